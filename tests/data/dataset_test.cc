#include "server/data/dataset.h"

#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "temp_dir.h"

namespace segserve::data {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::TempDir;

NamedSample MakeSample(const std::string &id, int size, int seed) {
  NamedSample s{id, Image::Create(size, size, 3), Mask::Create(size, size)};
  for (size_t i = 0; i < s.image.bytes.size(); ++i) s.image.bytes[i] = (i * 7 + seed * 13) % 256;
  for (size_t i = 0; i < s.mask.ids.size(); ++i) s.mask.ids[i] = (i / 5 + seed) % 3;
  return s;
}

DatasetManifest Manifest() {
  DatasetManifest m;
  m.name = "tiny";
  m.channels = 3;
  m.classes = {{0, "background"}, {1, "cell"}, {2, "parasite"}};
  return m;
}

// Writes a valid three-sample data set (a, b, c) into `root`.
void WriteTiny(const std::string &root, DatasetManifest m = Manifest(),
               ImageFormat format = ImageFormat::kPng) {
  ASSERT_TRUE(WriteDataset(root, m,
                           {MakeSample("a", 16, 1), MakeSample("b", 16, 2), MakeSample("c", 16, 3)},
                           format)
                  .ok());
}

std::string OpenError(const std::string &root) {
  absl::StatusOr<Dataset> ds = OpenDataset(root);
  EXPECT_FALSE(ds.ok());
  return std::string(ds.status().message());
}

TEST(DatasetTest, OpensWhatWasWritten) {
  TempDir dir;
  DatasetManifest m = Manifest();
  m.split_lists = SplitLists{{"a", "b"}, {"c"}, {}};
  m.domain = "scanner-1";
  m.split_domains["val"] = "scanner-2";
  m.image_domains["a"] = "special";
  WriteTiny(dir.path(), m);
  absl::StatusOr<Dataset> ds = OpenDataset(dir.path());
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->layout, "native");
  EXPECT_EQ(ds->name, "tiny");
  EXPECT_EQ(ds->channels, 3);
  EXPECT_EQ(ds->classes, m.classes);
  ASSERT_EQ(ds->samples.size(), 3u);
  EXPECT_EQ(ds->samples[1].id, "b");
  EXPECT_EQ(ds->samples[1].height, 16);
  EXPECT_EQ(ds->train, (std::vector<int>{0, 1}));
  EXPECT_EQ(ds->val, (std::vector<int>{2}));
  EXPECT_TRUE(ds->test.empty());
  EXPECT_EQ(ds->samples[0].domain, "special");
  EXPECT_EQ(ds->samples[1].domain, "scanner-1");
  EXPECT_EQ(ds->samples[2].domain, "scanner-2");
  const LoadedSample s = *LoadSample(*ds, 1);
  EXPECT_EQ(s.image, MakeSample("b", 16, 2).image);
  EXPECT_EQ(s.mask, MakeSample("b", 16, 2).mask);
}

TEST(DatasetTest, JpegAndTiffImagesAreAccepted) {
  for (ImageFormat f : {ImageFormat::kJpeg, ImageFormat::kTiff}) {
    TempDir dir;
    WriteTiny(dir.path(), Manifest(), f);
    absl::StatusOr<Dataset> ds = OpenDataset(dir.path());
    ASSERT_TRUE(ds.ok()) << ds.status();
    EXPECT_EQ(ds->samples.size(), 3u);
  }
}

TEST(DatasetTest, OnTheFlyShiftChangesTheImageButNotTheMask) {
  TempDir dir;
  WriteTiny(dir.path());
  const Dataset ds = *OpenDataset(dir.path());
  const LoadedSample plain = *LoadSample(ds, 0);
  const LoadedSample shifted = *LoadSample(ds, 0, {ShiftKind::kContrast, 4});
  EXPECT_NE(plain.image, shifted.image);
  EXPECT_EQ(plain.mask, shifted.mask);
}

TEST(DatasetTest, RatioSplitsAreSeededAndComplete) {
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i) ids.push_back("s" + std::to_string(i));
  const SplitLists a = *SplitByRatios(ids, {0.6, 0.2, 0.2, 4});
  const SplitLists b = *SplitByRatios({ids.rbegin(), ids.rend()}, {0.6, 0.2, 0.2, 4});
  const SplitLists c = *SplitByRatios(ids, {0.6, 0.2, 0.2, 5});
  EXPECT_EQ(a.train.size(), 60u);
  EXPECT_EQ(a.val.size(), 20u);
  EXPECT_EQ(a.test.size(), 20u);
  EXPECT_EQ(a.train, b.train);  // input order does not matter
  EXPECT_NE(a.train, c.train);
  EXPECT_FALSE(SplitByRatios(ids, {0.8, 0.3, 0.0, 1}).ok());
  EXPECT_FALSE(SplitByRatios(ids, {-0.1, 0.6, 0.5, 1}).ok());
}

TEST(DatasetTest, MissingMaskIsNamed) {
  TempDir dir;
  WriteTiny(dir.path());
  fs::remove(dir / "masks/b.png");
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("missing mask masks/b.png"));
}

TEST(DatasetTest, SizeMismatchIsNamed) {
  TempDir dir;
  WriteTiny(dir.path());
  ASSERT_TRUE(WriteMaskFile(dir / "masks/b.png", Mask::Create(8, 16)).ok());
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("size mismatch for sample 'b'"));
}

TEST(DatasetTest, MaskValueOutsideTheClassListIsNamed) {
  TempDir dir;
  WriteTiny(dir.path());
  Mask bad = Mask::Create(16, 16);
  bad.ids[40] = 7;
  ASSERT_TRUE(WriteMaskFile(dir / "masks/c.png", bad).ok());
  const std::string error = OpenError(dir.path());
  EXPECT_THAT(error, HasSubstr("holds value 7"));
  EXPECT_THAT(error, HasSubstr("[0, 1, 2]"));
}

TEST(DatasetTest, UnreadableImageIsNamed) {
  TempDir dir;
  WriteTiny(dir.path());
  ASSERT_TRUE(common::WriteFileAtomically(dir / "images/a.png", "not a png").ok());
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("unreadable file"));
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("a.png"));
}

TEST(DatasetTest, CorruptMaskIsUnreadable) {
  TempDir dir;
  WriteTiny(dir.path());
  std::string png = *common::ReadFile(dir / "masks/a.png");
  png.resize(png.size() / 2);
  ASSERT_TRUE(common::WriteFileAtomically(dir / "masks/a.png", png).ok());
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("unreadable file"));
}

TEST(DatasetTest, SymlinkEscapingTheRootIsRefused) {
  TempDir dir, outside;
  WriteTiny(dir.path());
  ASSERT_TRUE(WriteImageFile(outside / "secret.png", MakeSample("x", 16, 1).image).ok());
  fs::remove(dir / "images/a.png");
  fs::create_symlink(outside / "secret.png", dir / "images/a.png");
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("escapes the data-set root"));
}

TEST(DatasetTest, SymlinkedMaskEscapingTheRootIsRefused) {
  TempDir dir, outside;
  WriteTiny(dir.path());
  ASSERT_TRUE(WriteMaskFile(outside / "m.png", Mask::Create(16, 16)).ok());
  fs::remove(dir / "masks/c.png");
  fs::create_symlink(outside / "m.png", dir / "masks/c.png");
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("escapes the data-set root"));
}

TEST(DatasetTest, SymlinkedImagesFolderEscapingTheRootIsRefused) {
  TempDir dir, outside;
  WriteTiny(dir.path());
  fs::rename(dir / "images", outside / "images");
  fs::create_directory_symlink(outside / "images", dir / "images");
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("escapes the data-set root"));
}

TEST(DatasetTest, SymlinkInsideTheRootIsFine) {
  TempDir dir;
  WriteTiny(dir.path());
  fs::rename(dir / "images/a.png", dir / "a_store.png");
  fs::create_symlink(dir / "a_store.png", dir / "images/a.png");
  EXPECT_TRUE(OpenDataset(dir.path()).ok());
}

TEST(DatasetTest, MissingRootOrManifestIsNotFound) {
  TempDir dir;
  EXPECT_EQ(OpenDataset(dir / "nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(OpenDataset(dir.path()).status().code(), absl::StatusCode::kNotFound);
}

TEST(DatasetTest, MalformedManifestIsInvalid) {
  TempDir dir;
  WriteTiny(dir.path());
  ASSERT_TRUE(common::WriteFileAtomically(dir / "dataset.json", "{\"channels\": \"x\"").ok());
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("dataset.json"));
  ASSERT_TRUE(common::WriteFileAtomically(dir / "dataset.json", "{\"channels\": 3}").ok());
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("malformed"));
}

TEST(DatasetTest, SplitNamingAnUnknownSampleIsRefused) {
  TempDir dir;
  DatasetManifest m = Manifest();
  m.split_lists = SplitLists{{"a", "zzz"}, {}, {}};
  WriteTiny(dir.path(), m);
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("splits.train names unknown sample 'zzz'"));
}

TEST(DatasetTest, SampleInTwoSplitsIsRefused) {
  TempDir dir;
  DatasetManifest m = Manifest();
  m.split_lists = SplitLists{{"a"}, {"a"}, {}};
  WriteTiny(dir.path(), m);
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("more than one split"));
}

TEST(DatasetTest, ChannelCountMustMatchTheManifest) {
  TempDir dir;
  DatasetManifest m = Manifest();
  WriteTiny(dir.path(), m);
  m.channels = 1;
  ASSERT_TRUE(common::WriteFileAtomically(dir / "dataset.json", ManifestToJson(m)).ok());
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("has 3 channels, dataset.json says 1"));
}

TEST(DatasetTest, WriterRefusesUnsafeIdsAndDuplicates) {
  TempDir dir;
  std::unique_ptr<DatasetWriter> w = *DatasetWriter::Create(dir.path(), Manifest());
  const NamedSample s = MakeSample("a", 8, 1);
  EXPECT_FALSE(w->Add("../evil", s.image, s.mask).ok());
  EXPECT_FALSE(w->Add(".hidden", s.image, s.mask).ok());
  EXPECT_TRUE(w->Add("a", s.image, s.mask).ok());
  EXPECT_EQ(w->Add("a", s.image, s.mask).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(w->Add("b", s.image, Mask::Create(4, 4)).ok());
}

TEST(DatasetTest, HeaderOnlyOpenSkipsDecoding) {
  TempDir dir;
  WriteTiny(dir.path());
  Mask bad = Mask::Create(16, 16);
  bad.ids[0] = 9;
  ASSERT_TRUE(WriteMaskFile(dir / "masks/a.png", bad).ok());
  OpenOptions fast;
  fast.verify_contents = false;
  EXPECT_TRUE(OpenDataset(dir.path(), fast).ok());
  EXPECT_FALSE(OpenDataset(dir.path()).ok());
}

}  // namespace
}  // namespace segserve::data
