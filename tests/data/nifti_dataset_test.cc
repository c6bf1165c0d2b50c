// NIfTI data sets (server/data/nifti_dataset.cc through OpenDataset/LoadSample): both
// layouts on disk, slicing, per-volume splits, the volume cache and every refusal.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/data/dataset.h"
#include "server/data/loader.h"
#include "server/data/nnunet.h"
#include "server/data/synthetic_mr.h"
#include "server/data/volume_cache.h"
#include "tests/data/temp_dir.h"

namespace segserve::data {
namespace {
namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::TempDir;

SyntheticMrOptions Tiny() {
  SyntheticMrOptions options;
  options.dims = {32, 28, 6};
  return options;
}

std::string Read(const std::string &path) { return *common::ReadFile(path); }
void Write(const std::string &path, const std::string &bytes) {
  ASSERT_TRUE(common::WriteFileAtomically(path, bytes).ok());
}

nlohmann::json ReadJson(const std::string &path) { return nlohmann::json::parse(Read(path)); }
void WriteJson(const std::string &path, const nlohmann::json &j) { Write(path, j.dump(2)); }

// The nnU-Net set WriteSyntheticMrDataset writes: mr_000 .. mr_<count-1>.
class NiftiDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(WriteSyntheticMrDataset(dir_.path(), 3, 7, Tiny()).ok()); }
  std::string OpenError(const OpenOptions &options = {}) {
    absl::StatusOr<Dataset> ds = OpenDataset(dir_.path(), options);
    EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument) << ds.status();
    return std::string(ds.status().message());
  }
  void EditManifest(const std::function<void(nlohmann::json &)> &edit) {
    nlohmann::json j = ReadJson(dir_ / "dataset.json");
    edit(j);
    WriteJson(dir_ / "dataset.json", j);
  }
  // The normalised volume `i` as LoadSample should slice it.
  static std::vector<float> Normalised(const std::string &path,
                                       MrNormalization method = MrNormalization::kPercentile) {
    std::vector<float> voxels = ReadNifti(path)->voxels;
    NormalizationOptions options;
    options.method = method;
    NormalizeIntensities(voxels, options);
    return voxels;
  }

  TempDir dir_;
};

TEST_F(NiftiDatasetTest, NnUnetVolumesBecomeOneSamplePerSlice) {
  absl::StatusOr<Dataset> ds = OpenDataset(dir_.path());
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->layout, "nnunet");
  EXPECT_EQ(ds->channels, 1);
  ASSERT_EQ(ds->classes.size(), 3u);
  EXPECT_EQ(ds->classes[2].name, "lesion");
  ASSERT_EQ(ds->volumes.size(), 3u);
  EXPECT_EQ(ds->volumes[1].id, "mr_001");
  EXPECT_EQ(ds->volumes[1].dims, (std::array<int64_t, 3>{32, 28, 6}));
  ASSERT_EQ(ds->samples.size(), 18u);
  EXPECT_EQ(ds->samples[0].id, "mr_000_z000");
  EXPECT_EQ(ds->samples[17].id, "mr_002_z005");
  for (const DatasetSample &s : ds->samples) {
    EXPECT_EQ(s.height, 28);  // axis 2: ny x nx
    EXPECT_EQ(s.width, 32);
    EXPECT_EQ(s.image_path, ds->volumes[s.volume].image_path);
    EXPECT_EQ(s.id, absl::StrFormat("%s_z%03d", ds->volumes[s.volume].id, s.slice));
  }
  EXPECT_EQ(ds->train.size() + ds->val.size() + ds->test.size(), 18u);
}

TEST_F(NiftiDatasetTest, SlicesAreTheNormalisedVolumeAndItsLabels) {
  const Dataset ds = *OpenDataset(dir_.path());
  const std::vector<float> voxels = Normalised(ds.volumes[1].image_path);
  const NiftiLabels labels = *ReadNiftiLabels(ds.volumes[1].label_path);
  for (int k = 0; k < 6; ++k) {
    const int index = 6 + k;
    ASSERT_EQ(ds.samples[index].volume, 1);
    ASSERT_EQ(ds.samples[index].slice, k);
    absl::StatusOr<LoadedSample> s = LoadSample(ds, index);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->image.channels, 1);
    EXPECT_EQ(s->image.depth, PixelDepth::kF32);
    EXPECT_EQ(s->image, ExtractSlice(voxels, {32, 28, 6}, 2, k));
    EXPECT_EQ(s->mask, ExtractMaskSlice(labels.ids, {32, 28, 6}, 2, k));
    for (size_t i = 0; i < s->image.num_pixels(); ++i) {
      ASSERT_GE(s->image.GetNormalized(i), 0.0f);
      ASSERT_LE(s->image.GetNormalized(i), 1.0f);
    }
  }
}

TEST_F(NiftiDatasetTest, AxisAndNormalisationComeFromTheManifest) {
  EditManifest([](nlohmann::json &j) { j["nifti"] = {{"axis", 0}, {"normalization", "zscore"}}; });
  absl::StatusOr<Dataset> ds = OpenDataset(dir_.path());
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->slicing.axis, 0);
  EXPECT_EQ(ds->slicing.normalization, MrNormalization::kZScore);
  ASSERT_EQ(ds->samples.size(), 3u * 32);
  EXPECT_EQ(ds->samples[31].id, "mr_000_x031");
  EXPECT_EQ(ds->samples[0].height, 6);  // axis 0: nz x ny
  EXPECT_EQ(ds->samples[0].width, 28);
  const std::vector<float> voxels = Normalised(ds->volumes[0].image_path, MrNormalization::kZScore);
  const LoadedSample s = *LoadSample(*ds, 5);
  EXPECT_EQ(s.image, ExtractSlice(voxels, {32, 28, 6}, 0, 5));
}

TEST_F(NiftiDatasetTest, SplitsKeepEveryVolumeWhole) {
  TempDir many;
  SyntheticMrOptions options;
  options.dims = {16, 16, 4};
  ASSERT_TRUE(WriteSyntheticMrDataset(many.path(), 10, 3, options).ok());
  absl::StatusOr<Dataset> ds = OpenDataset(many.path());
  ASSERT_TRUE(ds.ok()) << ds.status();
  std::map<int, std::set<int>> splits_of_volume;
  for (int split = 0; split < 3; ++split) {
    for (int i : ds->split(static_cast<Split>(split))) {
      splits_of_volume[ds->samples[i].volume].insert(split);
    }
  }
  ASSERT_EQ(splits_of_volume.size(), 10u);
  for (const auto &[volume, splits] : splits_of_volume) EXPECT_EQ(splits.size(), 1u) << volume;
  // 70/15/15 of 10 volumes (not of 40 slices): 7, 2 (round(1.5)), 1 volumes.
  EXPECT_EQ(ds->train.size(), 7u * 4);
  EXPECT_EQ(ds->val.size(), 2u * 4);
  EXPECT_EQ(ds->test.size(), 1u * 4);
}

TEST_F(NiftiDatasetTest, NativeLayoutWithExplicitSplitsAndDomains) {
  TempDir native;
  fs::create_directories(native / "images");
  fs::create_directories(native / "masks");
  for (const char *id : {"mr_000", "mr_001", "mr_002"}) {
    fs::copy_file(dir_ / (std::string("imagesTr/") + id + "_0000.nii.gz"),
                  native / (std::string("images/") + id + ".nii.gz"));
    fs::copy_file(dir_ / (std::string("labelsTr/") + id + ".nii.gz"),
                  native / (std::string("masks/") + id + ".nii.gz"));
  }
  // An uncompressed label volume is as good as a compressed one.
  fs::remove(native / "masks/mr_002.nii.gz");
  ASSERT_TRUE(WriteNiftiLabels(native / "masks/mr_002.nii",
                               *ReadNifti(dir_ / "imagesTr/mr_002_0000.nii.gz"),
                               ReadNiftiLabels(dir_ / "labelsTr/mr_002.nii.gz")->ids)
                  .ok());
  DatasetManifest m;
  m.name = "mr";
  m.channels = 1;
  m.classes = {{0, "background"}, {1, "organ"}, {2, "lesion"}};
  m.split_lists = SplitLists{{"mr_000", "mr_002"}, {"mr_001"}, {}};
  m.image_domains["mr_002"] = "scanner-b";
  m.nifti = VolumeSlicing{1, MrNormalization::kPercentile};
  Write(native / "dataset.json", ManifestToJson(m));
  absl::StatusOr<Dataset> ds = OpenDataset(native.path());
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->layout, "native");
  EXPECT_EQ(ds->slicing.axis, 1);
  ASSERT_EQ(ds->samples.size(), 3u * 28);
  EXPECT_EQ(ds->samples[0].id, "mr_000_y000");
  EXPECT_EQ(ds->train.size(), 2u * 28);
  EXPECT_EQ(ds->val.size(), 28u);
  EXPECT_TRUE(ds->test.empty());
  for (const DatasetSample &s : ds->samples) {
    EXPECT_EQ(s.domain, s.volume == 2 ? "scanner-b" : "") << s.id;
  }
  EXPECT_TRUE(LoadSample(*ds, 3 * 28 - 1).ok());

  // Splits name volumes, never slices.
  nlohmann::json j = ReadJson(native / "dataset.json");
  j["splits"]["train"] = {"mr_000_y000"};
  WriteJson(native / "dataset.json", j);
  EXPECT_THAT(OpenDataset(native.path()).status().message(),
              HasSubstr("splits.train names unknown volume 'mr_000_y000'"));
}

TEST_F(NiftiDatasetTest, EveryBadVolumeIsNamed) {
  const std::string image = dir_ / "imagesTr/mr_001_0000.nii.gz";
  const std::string label = dir_ / "labelsTr/mr_001.nii.gz";
  const std::string good_image = Read(image), good_label = Read(label);
  const NiftiVolume volume = *ReadNifti(image);
  const auto restore = [&] {
    Write(image, good_image);
    Write(label, good_label);
  };

  // Truncated gzip: only a full read sees it; a header-only open cannot.
  Write(image, good_image.substr(0, good_image.size() / 2));
  EXPECT_THAT(OpenError(), AllOf(HasSubstr(image), HasSubstr("truncated gzip stream")));
  OpenOptions headers;
  headers.verify_contents = false;
  absl::StatusOr<Dataset> lazy = OpenDataset(dir_.path(), headers);
  ASSERT_TRUE(lazy.ok()) << lazy.status();
  absl::StatusOr<LoadedSample> slice = LoadSample(*lazy, 6);
  EXPECT_EQ(slice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(slice.status().message(), AllOf(HasSubstr(image), HasSubstr("truncated gzip")));
  restore();

  // A label volume whose shape differs from its image (header-level: seen either way).
  NiftiVolume smaller = *NewNiftiVolume({32, 28, 5}, volume.sform);
  ASSERT_TRUE(WriteNiftiLabels(label, smaller, std::vector<uint8_t>(32 * 28 * 5, 0)).ok());
  for (bool verify : {true, false}) {
    OpenOptions options;
    options.verify_contents = verify;
    EXPECT_THAT(OpenError(options),
                AllOf(HasSubstr(label), HasSubstr("shape 32x28x5 differs"), HasSubstr(image)));
  }
  restore();

  // Non-integer labels.
  NiftiVolume fractional = volume;
  std::fill(fractional.voxels.begin(), fractional.voxels.end(), 0.0f);
  fractional.voxels[40] = 1.5f;
  ASSERT_TRUE(WriteNiftiFloat(label, fractional).ok());
  EXPECT_THAT(OpenError(), AllOf(HasSubstr(label), HasSubstr("= 1.5: labels must be integer")));
  restore();

  // A label value that is not a declared class.
  std::vector<uint8_t> ids(volume.voxels.size(), 0);
  ids[7] = 9;
  ASSERT_TRUE(WriteNiftiLabels(label, volume, ids).ok());
  EXPECT_THAT(OpenError(),
              AllOf(HasSubstr(label), HasSubstr("holds value 9, which is not in the class list")));
  restore();

  // 4-D (a series): refused from the header.
  fs::remove(image);
  const std::string plain = dir_ / "imagesTr/mr_001_0000.nii";
  ASSERT_TRUE(WriteNiftiFloat(plain, volume).ok());
  std::string bytes = Read(plain);
  int16_t dim[8];
  std::memcpy(dim, bytes.data() + 40, sizeof(dim));
  dim[0] = 4;
  dim[4] = 2;
  std::memcpy(bytes.data() + 40, dim, sizeof(dim));
  Write(plain, bytes);
  for (bool verify : {true, false}) {
    OpenOptions options;
    options.verify_contents = verify;
    EXPECT_THAT(OpenError(options), AllOf(HasSubstr(plain), HasSubstr("4-D volume")));
  }
  fs::remove(plain);
  restore();

  // A volume without labels.
  fs::remove(label);
  EXPECT_THAT(OpenError(), HasSubstr("missing mask labelsTr/mr_001.nii.gz for volume " + image));
  restore();
  EXPECT_TRUE(OpenDataset(dir_.path()).ok());
}

TEST_F(NiftiDatasetTest, BadManifestsAreNamed) {
  EditManifest([](nlohmann::json &j) { j["nifti"] = {{"axis", 3}}; });
  EXPECT_THAT(OpenError(), HasSubstr("dataset.json nifti.axis: must be 0, 1 or 2, got 3"));
  EditManifest([](nlohmann::json &j) { j["nifti"] = {{"normalisation", "zscore"}}; });
  EXPECT_THAT(OpenError(), HasSubstr("nifti.normalisation: unknown key"));
  EditManifest([](nlohmann::json &j) { j["nifti"] = {{"normalization", "minmax"}}; });
  EXPECT_THAT(OpenError(), HasSubstr("nifti.normalization: must be \"percentile\" or \"zscore\""));
  EditManifest([](nlohmann::json &j) {
    j.erase("nifti");
    j["channel_names"] = {{"0", "R"}, {"1", "G"}, {"2", "B"}};
  });
  EXPECT_THAT(OpenError(), HasSubstr("NIfTI volumes are sliced into 1-channel images; "
                                     "dataset.json says 3 channels"));
}

TEST_F(NiftiDatasetTest, VolumesAndImagesDoNotMix) {
  Image image = Image::Create(28, 32, 1);
  ASSERT_TRUE(WriteImageFile(dir_ / "imagesTr/extra_0000.png", image).ok());
  EXPECT_THAT(OpenError(), HasSubstr("imagesTr/ mixes NIfTI volumes with 2-D images"));
}

TEST_F(NiftiDatasetTest, EachVolumeIsDecodedOnceWhileItFitsTheCache) {
  const Dataset ds = *OpenDataset(dir_.path());
  ASSERT_NE(ds.volume_cache, nullptr);
  // Several threads, every slice, twice: three decodes in all.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 2; ++round) {
        for (size_t i = 0; i < ds.samples.size(); ++i) {
          const int index = static_cast<int>((i * 7 + t) % ds.samples.size());
          if (!LoadSample(ds, index).ok()) ++failures;
        }
      }
    });
  }
  for (std::thread &t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const VolumeCache::Stats stats = ds.volume_cache->stats();
  EXPECT_EQ(stats.misses, 3);
  EXPECT_EQ(stats.hits, 4 * 2 * 18 - 3);
  EXPECT_EQ(stats.bytes, 3 * (32 * 28 * 6 * 5));
  EXPECT_EQ(stats.evictions, 0);
}

TEST_F(NiftiDatasetTest, TheCacheKeepsToItsBudget) {
  OpenOptions options;
  options.volume_cache_bytes = 2 * 32 * 28 * 6 * 5;  // two volumes
  const Dataset ds = *OpenDataset(dir_.path(), options);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 18; ++i) ASSERT_TRUE(LoadSample(ds, i).ok());
  }
  VolumeCache::Stats stats = ds.volume_cache->stats();
  EXPECT_EQ(stats.misses, 6);  // volume order 0 1 2 0 1 2 with room for two: all miss
  EXPECT_LE(stats.bytes, options.volume_cache_bytes);
  EXPECT_EQ(stats.evictions, 4);

  options.volume_cache_bytes = 0;
  const Dataset uncached = *OpenDataset(dir_.path(), options);
  for (int i = 0; i < 18; ++i) {
    EXPECT_EQ(LoadSample(uncached, i)->image, LoadSample(ds, i)->image);
  }
  EXPECT_EQ(uncached.volume_cache->stats().misses, 18);
  EXPECT_EQ(uncached.volume_cache->stats().bytes, 0);
}

TEST_F(NiftiDatasetTest, TheLoaderBatchesOneChannelSlices) {
  auto ds = std::make_shared<const Dataset>(*OpenDataset(dir_.path()));
  LoaderOptions options;
  options.split = Split::kTrain;
  options.batch_size = 4;
  options.workers = 3;
  absl::StatusOr<std::unique_ptr<Loader>> loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  absl::StatusOr<std::optional<Batch>> batch = (*loader)->Next();
  ASSERT_TRUE(batch.ok() && batch->has_value()) << batch.status();
  EXPECT_EQ((*batch)->c, 1);
  EXPECT_EQ((*batch)->h, 28);
  EXPECT_EQ((*batch)->w, 32);
  EXPECT_EQ((*batch)->images.size(), 4u * 28 * 32);
  absl::StatusOr<Normalization> norm = ComputeNormalization(*ds, Split::kTrain);
  ASSERT_TRUE(norm.ok()) << norm.status();
  ASSERT_EQ(norm->mean.size(), 1u);
  EXPECT_GT(norm->mean[0], 0.0f);
  EXPECT_LT(norm->mean[0], 1.0f);
}

TEST_F(NiftiDatasetTest, ShiftsApplyOnTheNormalisedScaleAndSaturationIsRefused) {
  const Dataset ds = *OpenDataset(dir_.path());
  const LoadedSample plain = *LoadSample(ds, 3);
  const LoadedSample darker = *LoadSample(ds, 3, {ShiftKind::kBrightness, 5});
  for (size_t i = 0; i < plain.image.num_pixels(); ++i) {
    ASSERT_FLOAT_EQ(darker.image.GetNormalized(i), plain.image.GetNormalized(i) * 0.4f);
  }
  EXPECT_EQ(darker.mask, plain.mask);
  absl::StatusOr<LoadedSample> saturated = LoadSample(ds, 3, {ShiftKind::kSaturation, 2});
  EXPECT_EQ(saturated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(saturated.status().message(), HasSubstr("saturation needs 3 channels"));
}

TEST_F(NiftiDatasetTest, ExportAsPngIsRefused) {
  const Dataset ds = *OpenDataset(dir_.path());
  TempDir out;
  const absl::Status s = ExportNnUnetDataset(ds, out.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("holds NIfTI volumes"));
}

}  // namespace
}  // namespace segserve::data
