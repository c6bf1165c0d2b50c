#include "server/model/device.h"

#include <torch/cuda.h>
#include <torch/version.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/model/torch_build.h"

namespace segserve::model {

TorchBuildInfo DescribeTorchBuild() {
  TorchBuildInfo info;
  info.version = TORCH_VERSION;
  info.cuda_built = kTorchBuiltWithCuda;
  try {
    info.cuda_devices = static_cast<int>(torch::cuda::device_count());
  } catch (const std::exception&) {
    info.cuda_devices = 0;  // a CUDA build on a machine without a driver
  }
  return info;
}

std::string TorchBuildSummary() {
  const TorchBuildInfo info = DescribeTorchBuild();
  if (!info.cuda_built) return absl::StrCat("LibTorch ", info.version, ", CPU only");
  return absl::StrCat("LibTorch ", info.version, " with CUDA, ", info.cuda_devices,
                      " device(s) visible");
}

absl::Status CheckDevice(const std::string& device, const std::string& field) {
  if (device == "cpu") return absl::OkStatus();
  int index = 0;
  const bool cuda = device == "cuda" || device.rfind("cuda:", 0) == 0;
  if (!cuda || (device != "cuda" && (!absl::SimpleAtoi(device.substr(5), &index) || index < 0))) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": expected cpu, cuda or cuda:N, got '", device, "'"));
  }
  const TorchBuildInfo info = DescribeTorchBuild();
  if (!info.cuda_built) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, "=", device, ": this segserve was built against LibTorch ",
                     info.version, " without CUDA (CPU only). Use ", field,
                     "=cpu, or run a CUDA build: the image from docker/Dockerfile.cuda, or "
                     "CMAKE_ARGS=-DTorch_DIR=<CUDA libtorch>/share/cmake/Torch scripts/build.sh "
                     "(docs/deploy.md, \"CUDA image\")"));
  }
  if (index >= info.cuda_devices) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, "=", device, ": this CUDA build (LibTorch ", info.version, ") sees ",
        info.cuda_devices, " CUDA device(s)",
        info.cuda_devices > 0 ? absl::StrCat(" (cuda:0..cuda:", info.cuda_devices - 1, ")") : "",
        "; check that the GPU is visible to the process (nvidia-smi, NVIDIA_VISIBLE_DEVICES, "
        "the nvidia.com/gpu resource)"));
  }
  return absl::OkStatus();
}

}  // namespace segserve::model
