// File: server/model/tensor_memory.h — where LibTorch's CPU tensors get their memory.
//
// LibTorch's default CPU allocator asks malloc for every tensor. glibc's malloc hands
// blocks over its mmap threshold (128 KiB, rising to at most 32 MiB) straight to mmap and
// back to the kernel on free, trims its heap top soon after, and gives every new thread an
// arena of 64 MiB heaps that are unmapped as soon as they empty. A training step allocates
// and frees gigabytes of activations and gradients, so every step faults all of them in
// again; on the 2-core VM that is a third of the CPU time in the kernel and 2-4x the step
// time (docs/PERFORMANCE.md, "The tensor allocator"). Under AddressSanitizer it is worse:
// ASan maps every block over 128 KiB afresh.
//
// InstallTensorAllocator() gives tensors their memory from glibc's allocator (the same
// ptmalloc, reached through libc's own handle so that a sanitizer's malloc does not stand
// in between) with the heap kept: no mmap per tensor, no trim after each free, one arena
// for all threads. The memory a step used stays mapped for the next step;
// ReleaseTensorMemory() gives the free part back to the kernel once a job is over, so an
// idle server does not sit on a training job's peak.
#pragma once

#include <cstdint>

namespace segserve::model {

// Installs the allocator for every CPU tensor allocated after the call (tensors allocated
// before keep their own deleter). Idempotent and thread-safe; call it before the first
// tensor (main, a benchmark, a test suite's set-up).
void InstallTensorAllocator();

// Whether InstallTensorAllocator() has run in this process.
bool TensorAllocatorInstalled();

// Returns the free pages of the tensor heap to the kernel (malloc_trim). Call when a job
// that allocated a lot is over, or when serving goes idle; cheap when there is nothing to
// give back. Does nothing while a TensorHeapHold exists.
void ReleaseTensorMemory();

// Held by a running training job: its steps reuse the heap's free part, so an idle serving
// path must not give that back in the middle of the job. Thread-safe; holds nest.
class TensorHeapHold {
 public:
  TensorHeapHold();
  ~TensorHeapHold();
  TensorHeapHold(const TensorHeapHold&) = delete;
  TensorHeapHold& operator=(const TensorHeapHold&) = delete;
};

struct TensorHeapStats {
  int64_t mapped_bytes = 0;  // address space glibc's arenas hold (in use + free)
  int64_t in_use_bytes = 0;  // allocated blocks in them
};
// glibc's arena totals (mallinfo2). In a sanitizer build these are the tensors'; otherwise
// they include every other malloc of the process.
TensorHeapStats ReadTensorHeapStats();

}  // namespace segserve::model
