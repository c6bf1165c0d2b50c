// File: server/model/device.h — which compute devices this build of segserve can use, and
// the one check of a device name ("cpu", "cuda", "cuda:N") against it, with a message that
// says which LibTorch the binary was built against and how to get a CUDA build.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace segserve::model {

struct TorchBuildInfo {
  std::string version;      // LibTorch headers the binary was compiled with, e.g. "1.13.0".
  bool cuda_built = false;  // linked against a CUDA LibTorch
  int cuda_devices = 0;     // CUDA devices visible now (0 on a CPU-only build)
};

TorchBuildInfo DescribeTorchBuild();
// "LibTorch 1.13.0, CPU only" / "LibTorch 2.11.0 with CUDA, 1 device(s)".
std::string TorchBuildSummary();

// OK when `device` can run here. InvalidArgument for a malformed name (naming `field`);
// FailedPrecondition, naming `field`, the build and the remedy, when it names a CUDA device
// that this build or this machine does not have.
absl::Status CheckDevice(const std::string& device, const std::string& field);

}  // namespace segserve::model
