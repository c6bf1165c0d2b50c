#include "server/data/synthetic.h"

#include <filesystem>
#include <map>
#include <string>

#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/data/dataset.h"
#include "temp_dir.h"

namespace segserve::data {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

// Relative path -> contents of every file under `root`.
std::map<std::string, std::string> Files(const std::string &root) {
  std::map<std::string, std::string> files;
  for (const auto &e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    files[fs::relative(e.path(), root).string()] = *common::ReadFile(e.path().string());
  }
  return files;
}

SyntheticDatasetOptions Small(uint64_t seed) {
  SyntheticDatasetOptions o;
  o.count = 6;
  o.seed = seed;
  o.sample.size = 64;
  return o;
}

TEST(SyntheticTest, SameSeedGivesByteIdenticalDatasetWhateverTheThreadCount) {
  TempDir a, b;
  SyntheticDatasetOptions one = Small(11), two = Small(11);
  one.threads = 1;
  two.threads = 3;
  ASSERT_TRUE(GenerateSyntheticDataset(a.path(), one).ok());
  ASSERT_TRUE(GenerateSyntheticDataset(b.path(), two).ok());
  const auto fa = Files(a.path()), fb = Files(b.path());
  EXPECT_EQ(fa.size(), 6u * 2 + 1);
  EXPECT_EQ(fa, fb);
}

TEST(SyntheticTest, DifferentSeedsGiveDifferentImages) {
  SyntheticOptions o;
  o.size = 64;
  const SyntheticSample a = *GenerateSyntheticSample(1, 0, o);
  const SyntheticSample b = *GenerateSyntheticSample(2, 0, o);
  const SyntheticSample c = *GenerateSyntheticSample(1, 1, o);
  EXPECT_NE(a.image, b.image);
  EXPECT_NE(a.image, c.image);
  EXPECT_NE(a.mask, b.mask);
}

TEST(SyntheticTest, ClassFractionsStayWithinDocumentedRanges) {
  for (uint64_t seed : {1u, 2u}) {
    for (int i = 0; i < 6; ++i) {
      const SyntheticSample s = *GenerateSyntheticSample(seed, i);
      ASSERT_EQ(s.image.width, 256);
      ASSERT_EQ(s.image.channels, 3);
      double f[3] = {0, 0, 0};
      for (uint8_t v : s.mask.ids) {
        ASSERT_LE(v, kSynthParasite);
        f[v] += 1.0 / static_cast<double>(s.mask.ids.size());
      }
      EXPECT_GE(f[0], 0.45);
      EXPECT_LE(f[0], 0.85);
      EXPECT_GE(f[1], 0.15);
      EXPECT_LE(f[1], 0.50);
      EXPECT_GE(f[2], 0.0002) << "every image holds a parasite";
      EXPECT_LE(f[2], 0.03);
    }
  }
}

TEST(SyntheticTest, SmearLooksLikeASmear) {
  // Light background, darker red cells that are redder than they are blue,
  // purple parasites (blue above green).
  const SyntheticSample s = *GenerateSyntheticSample(3, 0);
  double sum[3][3] = {};
  double count[3] = {};
  for (size_t p = 0; p < s.mask.num_pixels(); ++p) {
    const int k = s.mask.ids[p];
    for (int c = 0; c < 3; ++c) sum[k][c] += s.image.GetNormalized(p * 3 + c);
    count[k] += 1;
  }
  const auto mean = [&](int k, int c) { return sum[k][c] / count[k]; };
  EXPECT_GT(mean(0, 1), 0.8);
  EXPECT_LT(mean(1, 1), mean(0, 1) - 0.1);
  EXPECT_GT(mean(1, 0), mean(1, 2));
  EXPECT_LT(mean(2, 1), mean(1, 1));
  EXPECT_GT(mean(2, 2), mean(2, 1));
}

TEST(SyntheticTest, BakedShiftChangesImagesNotMasksAndLabelsTheDomain) {
  TempDir plain, shifted;
  SyntheticDatasetOptions o = Small(5);
  ASSERT_TRUE(GenerateSyntheticDataset(plain.path(), o).ok());
  o.shift = {ShiftKind::kBrightness, 3};
  ASSERT_TRUE(GenerateSyntheticDataset(shifted.path(), o).ok());
  const auto fa = Files(plain.path()), fb = Files(shifted.path());
  for (const auto &[path, bytes] : fa) {
    if (path.rfind("masks/", 0) == 0) {
      EXPECT_EQ(bytes, fb.at(path)) << path;
    } else if (path.rfind("images/", 0) == 0) {
      EXPECT_NE(bytes, fb.at(path)) << path;
    }
  }
  const Dataset ds = *OpenDataset(shifted.path());
  EXPECT_EQ(ds.samples[0].domain, "brightness:3");
  EXPECT_EQ(ds.name, "plasmodium-synth");
  EXPECT_EQ(ds.classes, SyntheticClasses());
}

TEST(SyntheticTest, GeneratedSetSplitsSeventyFifteenFifteen) {
  TempDir dir;
  SyntheticDatasetOptions o = Small(9);
  o.count = 20;
  ASSERT_TRUE(GenerateSyntheticDataset(dir.path(), o).ok());
  const Dataset ds = *OpenDataset(dir.path());
  EXPECT_EQ(ds.train.size(), 14u);
  EXPECT_EQ(ds.val.size(), 3u);
  EXPECT_EQ(ds.test.size(), 3u);
}

TEST(SyntheticTest, RefusesToOverwriteAndBadOptions) {
  TempDir dir;
  ASSERT_TRUE(GenerateSyntheticDataset(dir.path(), Small(1)).ok());
  EXPECT_EQ(GenerateSyntheticDataset(dir.path(), Small(1)).code(),
            absl::StatusCode::kAlreadyExists);
  SyntheticOptions bad;
  bad.size = 8;
  EXPECT_EQ(GenerateSyntheticSample(1, 0, bad).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segserve::data
