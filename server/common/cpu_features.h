// File: server/common/cpu_features.h — what this machine's CPU computes fast, as Linux
// reports it in /proc/cpuinfo.
#pragma once

namespace segserve::common {

// True when the CPU has bfloat16 arithmetic units (the avx512_bf16 or amx_bf16 flag); without
// them LibTorch emulates bf16 and is slower than fp32. False where /proc/cpuinfo is missing.
bool CpuHasFastBf16();

}  // namespace segserve::common
