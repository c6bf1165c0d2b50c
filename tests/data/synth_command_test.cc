#include <sstream>

#include "client/segctl/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/data/dataset.h"
#include "server/data/nifti.h"
#include "temp_dir.h"

namespace segserve::segctl {
namespace {
using data::testing::TempDir;
using ::testing::HasSubstr;

// `segctl synth ARGS...`, in-process.
int RunSynth(std::vector<std::string> args, std::string *out, std::string *err) {
  args.insert(args.begin(), "synth");
  std::ostringstream o, e;
  const int rc = RunSegctl(args, o, e);
  *out = o.str();
  *err = e.str();
  return rc;
}

TEST(SynthCommandTest, WritesAnOpenableDataset) {
  TempDir dir;
  std::string out, err;
  ASSERT_EQ(RunSynth({"--out", dir / "set", "--n", "4", "--size", "32", "--seed", "7", "--shift",
                      "saturation:2", "--name=demo"},
                     &out, &err),
            0)
      << err;
  EXPECT_THAT(out, HasSubstr("wrote 4 images"));
  absl::StatusOr<data::Dataset> ds = data::OpenDataset(dir / "set");
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->name, "demo");
  EXPECT_EQ(ds->samples.size(), 4u);
  EXPECT_EQ(ds->samples[0].width, 32);
  EXPECT_EQ(ds->samples[0].domain, "saturation:2");
}

TEST(SynthCommandTest, HelpPrintsUsage) {
  std::string out, err;
  EXPECT_EQ(RunSynth({"--help"}, &out, &err), 0);
  EXPECT_THAT(out, HasSubstr("Usage: segctl synth"));
  EXPECT_THAT(out, HasSubstr("--threads"));
  EXPECT_THAT(out, HasSubstr("Example"));
}

TEST(SynthCommandTest, UsageErrorsExitTwo) {
  std::string out, err;
  EXPECT_EQ(RunSynth({}, &out, &err), 2);
  EXPECT_THAT(err, HasSubstr("--out is required"));
  EXPECT_EQ(RunSynth({"--out", "/tmp/x", "--n", "0"}, &out, &err), 2);
  EXPECT_THAT(err, HasSubstr("--n"));
  EXPECT_EQ(RunSynth({"--out", "/tmp/x", "--shift", "brightness:9"}, &out, &err), 2);
  EXPECT_THAT(err, HasSubstr("0..5"));
  EXPECT_EQ(RunSynth({"--out", "/tmp/x", "--bogus", "1"}, &out, &err), 2);
  EXPECT_EQ(RunSynth({"--out"}, &out, &err), 2);
}

TEST(SynthCommandTest, ExistingDatasetFailsWithOne) {
  TempDir dir;
  std::string out, err;
  ASSERT_EQ(RunSynth({"--out", dir.path(), "--n", "1", "--size", "32"}, &out, &err), 0);
  EXPECT_EQ(RunSynth({"--out", dir.path(), "--n", "1", "--size", "32"}, &out, &err), 1);
  EXPECT_THAT(err, HasSubstr("already exists"));
}


TEST(SynthCommandTest, NiftiWritesSyntheticMrVolumes) {
  TempDir dir;
  std::string out, err;
  ASSERT_EQ(RunSynth({"--nifti", "--out", dir / "mr", "--n", "2", "--size", "32", "--slices", "8"},
                     &out, &err),
            0)
      << err;
  EXPECT_THAT(out, HasSubstr("wrote 2 MR volumes (32x32x8"));
  auto image = data::ReadNifti(dir / "mr/imagesTr/mr_001_0000.nii.gz");
  auto labels = data::ReadNiftiLabels(dir / "mr/labelsTr/mr_001.nii.gz");
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_EQ(image->dims, (std::array<int64_t, 3>{32, 32, 8}));
  EXPECT_TRUE(data::CheckSameShape(*image, *labels).ok());
  EXPECT_EQ(RunSynth({"--nifti", "--out", dir / "mr2", "--shift", "brightness:2"}, &out, &err), 2);
  EXPECT_THAT(err, HasSubstr("--shift does not apply to --nifti"));
}

TEST(SegmentNiftiCommandTest, LocalProblemsAreReportedBeforeAnyServerCall) {
  TempDir dir;
  std::ostringstream o, e;
  EXPECT_EQ(RunSegctl({"--server", "127.0.0.1:1", "segment", "--model", "m", "--nifti",
                       dir / "v.nii.gz", "--out", dir / "masks"},
                      o, e),
            1);
  EXPECT_THAT(e.str(), HasSubstr("--out: with --nifti, a .nii or .nii.gz file"));
  std::ostringstream o2, e2;
  EXPECT_EQ(RunSegctl({"--server", "127.0.0.1:1", "segment", "--model", "m", "--nifti",
                       dir / "missing.nii.gz", "--out", dir / "m.nii.gz"},
                      o2, e2),
            1);
  EXPECT_THAT(e2.str(), HasSubstr("missing.nii.gz"));
  std::ostringstream o3, e3;
  EXPECT_EQ(RunSegctl({"segment", "--model", "m", "--nifti", "x.nii", "--axis", "3"}, o3, e3), 2);
}

}  // namespace
}  // namespace segserve::segctl
