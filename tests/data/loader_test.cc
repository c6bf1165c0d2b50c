#include "server/data/loader.h"

#include <cmath>
#include <memory>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/data/synthetic.h"
#include "temp_dir.h"

namespace segserve::data {
namespace {
using ::testing::HasSubstr;
using testing::TempDir;

// Images whose pixels say where they came from: R = mask id * 100, G = row, B =
// column.
void WriteCoordinateDataset(const std::string &root, int n, int size) {
  DatasetManifest m;
  m.name = "coords";
  m.classes = {{0, "a"}, {1, "b"}, {2, "c"}};
  m.split_lists = SplitLists{};
  std::vector<NamedSample> samples;
  for (int k = 0; k < n; ++k) {
    NamedSample s{"s" + std::to_string(k), Image::Create(size, size, 3), Mask::Create(size, size)};
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        const size_t p = static_cast<size_t>(y) * size + x;
        const uint8_t id = static_cast<uint8_t>((x * 3 + y * 5 + k) % 3);
        s.mask.ids[p] = id;
        s.image.bytes[p * 3] = id * 100;
        s.image.bytes[p * 3 + 1] = static_cast<uint8_t>(y);
        s.image.bytes[p * 3 + 2] = static_cast<uint8_t>(x);
      }
    }
    m.split_lists->train.push_back(s.id);
    samples.push_back(std::move(s));
  }
  ASSERT_TRUE(WriteDataset(root, m, samples).ok());
}

std::shared_ptr<const Dataset> Open(const std::string &root) {
  absl::StatusOr<Dataset> ds = OpenDataset(root);
  EXPECT_TRUE(ds.ok()) << ds.status();
  return std::make_shared<const Dataset>(*std::move(ds));
}

std::vector<Batch> Epoch(Loader &loader, int epoch) {
  loader.StartEpoch(epoch);
  std::vector<Batch> out;
  while (true) {
    absl::StatusOr<std::optional<Batch>> b = loader.Next();
    EXPECT_TRUE(b.ok()) << b.status();
    if (!b.ok() || !b->has_value()) break;
    out.push_back(**std::move(b));
  }
  return out;
}

bool Same(const std::vector<Batch> &a, const std::vector<Batch> &b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].images != b[i].images || a[i].masks != b[i].masks || a[i].ids != b[i].ids) {
      return false;
    }
  }
  return true;
}

class LoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    synth_ = new TempDir;
    SyntheticDatasetOptions o;
    o.count = 14;
    o.seed = 4;
    o.sample.size = 48;
    o.ratios = {1.0, 0.0, 0.0, 0};
    ASSERT_TRUE(GenerateSyntheticDataset(synth_->path(), o).ok());
  }
  static void TearDownTestSuite() { delete synth_; }
  static LoaderOptions Options() {
    LoaderOptions o;
    o.batch_size = 4;
    o.seed = 99;
    o.augment.crop_height = 32;
    o.augment.crop_width = 32;
    o.augment.color = true;
    return o;
  }
  static TempDir *synth_;
};
TempDir *LoaderTest::synth_ = nullptr;

TEST_F(LoaderTest, BatchesHaveTheDocumentedShape) {
  auto loader = *Loader::Create(Open(synth_->path()), Options());
  EXPECT_EQ(loader->num_samples(), 14);
  EXPECT_EQ(loader->num_batches(), 4);
  const std::vector<Batch> batches = Epoch(*loader, 0);
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches[0].n, 4);
  EXPECT_EQ(batches[3].n, 2);  // partial last batch
  EXPECT_EQ(batches[0].c, 3);
  EXPECT_EQ(batches[0].h, 32);
  EXPECT_EQ(batches[0].images.size(), 4u * 3 * 32 * 32);
  EXPECT_EQ(batches[0].masks.size(), 4u * 32 * 32);
  std::set<std::string> ids;
  for (const Batch &b : batches) ids.insert(b.ids.begin(), b.ids.end());
  EXPECT_EQ(ids.size(), 14u);  // every sample exactly once
  LoaderOptions drop = Options();
  drop.drop_last = true;
  EXPECT_EQ((*Loader::Create(Open(synth_->path()), drop))->num_batches(), 3);
}

TEST_F(LoaderTest, DeterministicWhateverTheWorkerCount) {
  LoaderOptions one = Options(), many = Options();
  one.workers = 1;
  one.prefetch_batches = 1;
  many.workers = 3;
  many.prefetch_batches = 3;
  auto a = *Loader::Create(Open(synth_->path()), one);
  auto b = *Loader::Create(Open(synth_->path()), many);
  const auto a0 = Epoch(*a, 0), a1 = Epoch(*a, 1);
  EXPECT_TRUE(Same(a0, Epoch(*b, 0)));
  EXPECT_TRUE(Same(a1, Epoch(*b, 1)));
  EXPECT_FALSE(Same(a0, a1));  // a new epoch reshuffles and re-augments
  LoaderOptions other = Options();
  other.seed = 100;
  EXPECT_FALSE(Same(a0, Epoch(**Loader::Create(Open(synth_->path()), other), 0)));
}

TEST_F(LoaderTest, RestartingAnEpochMidwayGivesTheSameBatches) {
  auto loader = *Loader::Create(Open(synth_->path()), Options());
  const auto full = Epoch(*loader, 2);
  loader->StartEpoch(2);
  ASSERT_TRUE(loader->Next().ok());
  EXPECT_TRUE(Same(full, Epoch(*loader, 2)));
}

TEST_F(LoaderTest, AugmentationKeepsImageAndMaskAligned) {
  TempDir dir;
  WriteCoordinateDataset(dir.path(), 6, 20);
  LoaderOptions o;
  o.batch_size = 3;
  o.augment.crop_height = 12;
  o.augment.crop_width = 12;
  auto loader = *Loader::Create(Open(dir.path()), o);
  std::set<int> corners;  // which source pixel lands top-left: shows
                          // flips/rotations happen
  for (int epoch = 0; epoch < 4; ++epoch) {
    for (const Batch &b : Epoch(*loader, epoch)) {
      const size_t plane = 12 * 12;
      for (int k = 0; k < b.n; ++k) {
        const float *im = b.images.data() + k * 3 * plane;
        const uint8_t *mask = b.masks.data() + k * plane;
        const int sample = std::stoi(b.ids[k].substr(1));
        for (size_t p = 0; p < plane; ++p) {
          const int r = static_cast<int>(std::lround(im[p] * 255));
          const int y = static_cast<int>(std::lround(im[plane + p] * 255));
          const int x = static_cast<int>(std::lround(im[2 * plane + p] * 255));
          ASSERT_EQ(r, mask[p] * 100);
          ASSERT_EQ(mask[p], (x * 3 + y * 5 + sample) % 3);  // the mask of that source pixel
        }
        // Neighbours in the output are neighbours in the source: a rigid
        // transform.
        const int y0 = std::lround(im[plane] * 255), x0 = std::lround(im[2 * plane] * 255);
        const int y1 = std::lround(im[plane + 1] * 255), x1 = std::lround(im[2 * plane + 1] * 255);
        ASSERT_EQ(std::abs(y1 - y0) + std::abs(x1 - x0), 1);
        corners.insert((y1 - y0) * 10 + (x1 - x0));
      }
    }
  }
  EXPECT_EQ(corners.size(), 4u);  // right, left, down, up: all orientations seen
}

TEST_F(LoaderTest, NormalizationCentresTheData) {
  const auto ds = Open(synth_->path());
  const Normalization norm = *ComputeNormalization(*ds, Split::kTrain);
  ASSERT_EQ(norm.mean.size(), 3u);
  EXPECT_GT(norm.mean[1], 0.5);
  EXPECT_GT(norm.std[1], 0.02);
  LoaderOptions o = Options();
  o.augment = AugmentOptions{};  // full images, no colour jitter
  o.normalization = norm;
  auto loader = *Loader::Create(ds, o);
  double sum = 0, sq = 0, n = 0;
  for (const Batch &b : Epoch(*loader, 0)) {
    for (int k = 0; k < b.n; ++k) {
      for (int p = 0; p < b.h * b.w; ++p) {
        const float v = b.images[(k * 3 + 1) * b.h * b.w + p];  // green channel
        sum += v;
        sq += v * v;
        n += 1;
      }
    }
  }
  EXPECT_NEAR(sum / n, 0.0, 1e-3);
  EXPECT_NEAR(sq / n, 1.0, 1e-2);
}

TEST_F(LoaderTest, OnTheFlyShiftDarkensImagesAndLeavesMasks) {
  LoaderOptions plain = Options(), shifted = Options();
  shifted.shift = {ShiftKind::kBrightness, 5};
  const auto a = Epoch(**Loader::Create(Open(synth_->path()), plain), 0);
  const auto b = Epoch(**Loader::Create(Open(synth_->path()), shifted), 0);
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].masks, b[i].masks);
    for (float v : a[i].images) ma += v;
    for (float v : b[i].images) mb += v;
  }
  EXPECT_LT(mb, 0.6 * ma);
}

TEST_F(LoaderTest, BadConfigurationsAreRefusedUpFront) {
  LoaderOptions o = Options();
  o.augment.crop_height = 64;
  o.augment.crop_width = 64;
  EXPECT_THAT(Loader::Create(Open(synth_->path()), o).status().message(),
              HasSubstr("larger than sample"));
  o = Options();
  o.split = Split::kTest;
  EXPECT_EQ(Loader::Create(Open(synth_->path()), o).status().code(),
            absl::StatusCode::kFailedPrecondition);
  o = Options();
  o.batch_size = 0;
  EXPECT_FALSE(Loader::Create(Open(synth_->path()), o).ok());
}

TEST_F(LoaderTest, UnreadableSampleSurfacesAsAnError) {
  TempDir dir;
  WriteCoordinateDataset(dir.path(), 4, 16);
  auto ds = Open(dir.path());
  ASSERT_TRUE(common::WriteFileAtomically(dir / "images/s2.png", "broken").ok());
  LoaderOptions o;
  o.batch_size = 4;
  auto loader = *Loader::Create(ds, o);
  EXPECT_EQ(loader->Next().status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segserve::data
