#include "server/common/cpu_features.h"

#include <fstream>
#include <string>

#include "absl/strings/match.h"

namespace segserve::common {

bool CpuHasFastBf16() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (!absl::StartsWith(line, "flags")) continue;
    line += ' ';
    return absl::StrContains(line, " avx512_bf16 ") || absl::StrContains(line, " amx_bf16 ");
  }
  return false;
}

}  // namespace segserve::common
