// CheckDevice: the one check of --device / spec.device against this build of LibTorch.
#include "server/model/device.h"

#include "gtest/gtest.h"

namespace segserve::model {
namespace {

TEST(DeviceTest, CpuIsAlwaysAvailable) { EXPECT_TRUE(CheckDevice("cpu", "--device").ok()); }

TEST(DeviceTest, MalformedNamesAreInvalidArgumentsNamingTheField) {
  for (const char* bad : {"tpu", "cuda:", "cuda:x", "cuda:-1", "CUDA:0", "cuda0", ""}) {
    absl::Status s = CheckDevice(bad, "--device");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("--device"), std::string::npos) << s;
  }
}

TEST(DeviceTest, CudaOnACpuBuildNamesTheBuildAndTheRemedy) {
  if (DescribeTorchBuild().cuda_built) GTEST_SKIP() << "this LibTorch has CUDA";
  for (const char* device : {"cuda", "cuda:0", "cuda:3"}) {
    absl::Status s = CheckDevice(device, "spec.device");
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << device;
    EXPECT_NE(s.message().find("spec.device=" + std::string(device)), std::string::npos) << s;
    EXPECT_NE(s.message().find("without CUDA (CPU only)"), std::string::npos) << s;
    EXPECT_NE(s.message().find("LibTorch " + DescribeTorchBuild().version), std::string::npos)
        << s;
    EXPECT_NE(s.message().find("docker/Dockerfile.cuda"), std::string::npos) << s;
  }
}

TEST(DeviceTest, SummarySaysCpuOnlyOnACpuBuild) {
  const TorchBuildInfo info = DescribeTorchBuild();
  EXPECT_FALSE(info.version.empty());
  if (info.cuda_built) GTEST_SKIP() << "this LibTorch has CUDA";
  EXPECT_EQ(info.cuda_devices, 0);
  EXPECT_EQ(TorchBuildSummary(), "LibTorch " + info.version + ", CPU only");
}

}  // namespace
}  // namespace segserve::model
