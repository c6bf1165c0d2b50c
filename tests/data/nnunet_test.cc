#include "server/data/nnunet.h"

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/data/synthetic.h"
#include "temp_dir.h"

namespace segserve::data {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::TempDir;

class NnUnetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticDatasetOptions o;
    o.count = 7;
    o.seed = 3;
    o.sample.size = 48;
    ASSERT_TRUE(GenerateSyntheticDataset(native_.path(), o).ok());
    native_ds_ = *OpenDataset(native_.path());
    ASSERT_TRUE(ExportNnUnetDataset(native_ds_, nnunet_.path()).ok());
    // nnU-Net keeps no splits in dataset.json; ask for the ones the generator
    // used.
    options_.default_ratios = {0.7, 0.15, 0.15, 3};
  }
  TempDir native_, nnunet_;
  Dataset native_ds_;
  OpenOptions options_;
};

TEST_F(NnUnetTest, ReadsLikeTheNativeLayout) {
  absl::StatusOr<Dataset> ds = OpenDataset(nnunet_.path(), options_);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->layout, "nnunet");
  EXPECT_EQ(ds->name, native_ds_.name);
  EXPECT_EQ(ds->channels, native_ds_.channels);
  EXPECT_EQ(ds->classes, native_ds_.classes);
  ASSERT_EQ(ds->samples.size(), native_ds_.samples.size());
  EXPECT_EQ(ds->train, native_ds_.train);
  EXPECT_EQ(ds->val, native_ds_.val);
  EXPECT_EQ(ds->test, native_ds_.test);
  for (size_t i = 0; i < ds->samples.size(); ++i) {
    EXPECT_EQ(ds->samples[i].id, native_ds_.samples[i].id);
    EXPECT_THAT(ds->samples[i].image_path, HasSubstr("imagesTr/"));
    const LoadedSample a = *LoadSample(*ds, static_cast<int>(i));
    const LoadedSample b = *LoadSample(native_ds_, static_cast<int>(i));
    EXPECT_EQ(a.image, b.image);
    EXPECT_EQ(a.mask, b.mask);
  }
}

TEST_F(NnUnetTest, ReadsVersionOneManifests) {
  ASSERT_TRUE(
      common::WriteFileAtomically(nnunet_ / "dataset.json",
                                  R"({"name": "v1", "modality": {"0": "R", "1": "G", "2": "B"},
                      "labels": {"0": "background", "1": "red_blood_cell", "2": "parasite"},
                      "numTraining": 7})")
          .ok());
  absl::StatusOr<Dataset> ds = OpenDataset(nnunet_.path(), options_);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->classes, native_ds_.classes);
  EXPECT_EQ(ds->channels, 3);
}

TEST_F(NnUnetTest, MissingLabelIsNamed) {
  fs::remove(nnunet_ / "labelsTr/synth_00002.png");
  absl::StatusOr<Dataset> ds = OpenDataset(nnunet_.path(), options_);
  EXPECT_THAT(ds.status().message(), HasSubstr("missing mask labelsTr/synth_00002.png"));
}

TEST_F(NnUnetTest, LabelOutsideTheLabelListIsNamed) {
  Mask bad = Mask::Create(48, 48);
  bad.ids[5] = 3;
  ASSERT_TRUE(WriteMaskFile(nnunet_ / "labelsTr/synth_00001.png", bad).ok());
  absl::StatusOr<Dataset> ds = OpenDataset(nnunet_.path(), options_);
  EXPECT_THAT(ds.status().message(), HasSubstr("holds value 3"));
}

TEST_F(NnUnetTest, ChannelsSplitOverFilesAreRefused) {
  fs::copy_file(nnunet_ / "imagesTr/synth_00000_0000.png",
                nnunet_ / "imagesTr/synth_00000_0001.png");
  absl::StatusOr<Dataset> ds = OpenDataset(nnunet_.path(), options_);
  EXPECT_THAT(ds.status().message(), HasSubstr("separate files"));
}

TEST_F(NnUnetTest, RegionLabelsAreRefused) {
  ASSERT_TRUE(common::WriteFileAtomically(nnunet_ / "dataset.json",
                                          R"({"channel_names": {"0": "R", "1": "G", "2": "B"},
                      "labels": {"background": 0, "whole": [1, 2]}})")
                  .ok());
  EXPECT_THAT(OpenDataset(nnunet_.path(), options_).status().message(), HasSubstr("region-based"));
}

}  // namespace
}  // namespace segserve::data
