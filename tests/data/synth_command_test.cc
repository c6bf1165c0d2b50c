#include "client/segctl/cli.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/data/dataset.h"
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

}  // namespace
}  // namespace segserve::segctl
