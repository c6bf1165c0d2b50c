// Receiving a data set (server/data/upload.h) without the gRPC layer: files fed chunk by
// chunk as Datasets.Upload would, then validated and published; every rejection names the
// file and leaves the datasets folder as it was.
#include "server/data/upload.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/data/codec.h"
#include "server/data/nnunet.h"
#include "server/data/synthetic.h"
#include "server/data/synthetic_mr.h"
#include "temp_dir.h"

namespace segserve::data {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::TempDir;

std::string ReadAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Relative paths of the regular files under `root`, dataset.json first.
std::vector<std::string> FilesOf(const std::string &root) {
  std::vector<std::string> files;
  for (const auto &e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), root).string());
  }
  std::sort(files.begin(), files.end(), [](const std::string &a, const std::string &b) {
    return (a != "dataset.json") < (b != "dataset.json") ||
           ((a != "dataset.json") == (b != "dataset.json") && a < b);
  });
  return files;
}

std::vector<std::string> Entries(const std::string &dir) {
  std::vector<std::string> names;
  for (const auto &e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class UploadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticDatasetOptions o;
    o.count = 6;
    o.seed = 5;
    o.sample.size = 32;
    o.name = "smears";
    ASSERT_TRUE(GenerateSyntheticDataset(native_.path(), o).ok());
    absl::StatusOr<Dataset> ds = OpenDataset(native_.path());
    ASSERT_TRUE(ds.ok()) << ds.status();
    ASSERT_TRUE(ExportNnUnetDataset(*ds, nnunet_.path()).ok());
    fs::create_directories(datasets_.path());
  }

  // Begins an upload of `files` (relative to `dir`) as `name`, sending `chunk` bytes a
  // message; returns the first error, or the published set.
  absl::StatusOr<Dataset> Upload(DatasetUploads &uploads, const std::string &dir,
                                 const std::vector<std::string> &files, const std::string &name,
                                 UploadLayout layout, const std::string &id = "upload-0001",
                                 size_t chunk = 700) {
    UploadHeader header;
    header.name = name;
    header.layout = layout;
    header.upload_id = id;
    header.file_count = static_cast<int>(files.size());
    for (const auto &f : files) header.total_bytes += fs::file_size(dir + "/" + f);
    absl::StatusOr<DatasetUploads::Begun> begun = uploads.Begin(header);
    if (!begun.ok()) return begun.status();
    if (begun->published) return *begun->published;
    for (const std::string &f : files) {
      const std::string bytes = ReadAll(dir + "/" + f);
      size_t offset = 0;
      do {
        const size_t n = std::min(chunk, bytes.size() - offset);
        absl::Status s = begun->attempt->Write(f, static_cast<int64_t>(offset),
                                               std::string_view(bytes).substr(offset, n),
                                               offset + n == bytes.size());
        if (!s.ok()) return s;
        offset += n;
      } while (offset < bytes.size());
    }
    return begun->attempt->Publish();
  }

  // Expects `result` to be INVALID_ARGUMENT mentioning `file` and `reason`, and the datasets
  // folder to be empty again.
  void ExpectRejected(const absl::StatusOr<Dataset> &result, const std::string &file,
                      const std::string &reason) {
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(file));
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(reason));
    EXPECT_THAT(std::string(result.status().message()), ::testing::Not(HasSubstr(".upload-")))
        << "names the file as sent, not the staging path";
    EXPECT_TRUE(Entries(datasets_.path()).empty()) << "nothing left behind";
  }

  UploadLimits limits_;
  TempDir native_, nnunet_, datasets_;
};

TEST_F(UploadTest, NativeSetIsPublishedWhole) {
  DatasetUploads uploads(datasets_.path(), limits_);
  absl::StatusOr<Dataset> ds =
      Upload(uploads, native_.path(), FilesOf(native_.path()), "mine", UploadLayout::kNative);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->samples.size(), 6u);
  EXPECT_EQ(ds->root, fs::canonical(datasets_.path()).string() + "/mine");
  EXPECT_EQ(Entries(datasets_.path()), std::vector<std::string>{"mine"});
  absl::StatusOr<Dataset> opened = OpenDataset(datasets_ / "mine");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->name, "mine") << "the manifest follows the folder name";
  EXPECT_EQ(opened->layout, "native");
  const Dataset original = *OpenDataset(native_.path());
  EXPECT_EQ(opened->train.size(), original.train.size());
  EXPECT_EQ(opened->test.size(), original.test.size());
  for (size_t i = 0; i < original.samples.size(); ++i) {
    EXPECT_EQ(ReadAll(opened->samples[i].image_path), ReadAll(original.samples[i].image_path));
  }
  EXPECT_TRUE(fs::exists(datasets_ / ("mine/" + std::string(kUploadMarkerFile))));
}

TEST_F(UploadTest, NnUnetSetIsPublishedInTheNativeLayoutWithExplicitSplits) {
  DatasetUploads uploads(datasets_.path(), limits_);
  absl::StatusOr<Dataset> ds =
      Upload(uploads, nnunet_.path(), FilesOf(nnunet_.path()), "nn", UploadLayout::kNnUnet);
  ASSERT_TRUE(ds.ok()) << ds.status();
  absl::StatusOr<Dataset> opened = OpenDataset(datasets_ / "nn");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->layout, "native");
  EXPECT_FALSE(fs::exists(datasets_ / "nn/imagesTr"));
  EXPECT_EQ(opened->samples.size(), 6u);
  EXPECT_EQ(opened->train.size() + opened->val.size() + opened->test.size(), 6u);
  EXPECT_THAT(ReadAll(datasets_ / "nn/dataset.json"), HasSubstr("\"train\": ["));
  const Dataset original = *OpenDataset(native_.path());
  EXPECT_EQ(opened->classes, original.classes);
  for (size_t i = 0; i < original.samples.size(); ++i) {
    const LoadedSample a = *LoadSample(*opened, static_cast<int>(i));
    const LoadedSample b = *LoadSample(original, static_cast<int>(i));
    EXPECT_EQ(a.image, b.image);
    EXPECT_EQ(a.mask, b.mask);
  }
}

TEST_F(UploadTest, ARetryWithTheSameIdAfterSuccessGetsTheSetAndAnotherIdIsRefused) {
  DatasetUploads uploads(datasets_.path(), limits_);
  const auto files = FilesOf(native_.path());
  ASSERT_TRUE(Upload(uploads, native_.path(), files, "mine", UploadLayout::kNative).ok());
  UploadHeader header{"mine", UploadLayout::kNative, "upload-0001", 10, 1};
  absl::StatusOr<DatasetUploads::Begun> again = uploads.Begin(header);
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE(again->published.has_value());
  EXPECT_EQ(again->attempt, nullptr);
  EXPECT_EQ(again->published->samples.size(), 6u);
  header.upload_id = "upload-0002";
  EXPECT_EQ(uploads.Begin(header).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(UploadTest, ADeadAttemptsStagingIsRemovedByTheNextAttemptAndAtStart) {
  DatasetUploads uploads(datasets_.path(), limits_);
  UploadHeader header{"mine", UploadLayout::kNative, "upload-0001", 1000, 2};
  auto first = uploads.Begin(header);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->attempt->Write("images/a.png", 0, "abc", false).ok());
  first->attempt->Abandon();  // as when the pool could not take the stream's end
  first->attempt.reset();
  ASSERT_EQ(Entries(datasets_.path()).size(), 1u);
  auto second = uploads.Begin(header);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(Entries(datasets_.path()).size(), 1u) << "the first attempt's staging is gone";
  EXPECT_EQ(Entries(datasets_.path())[0], fs::path(second->attempt->staging_dir()).filename());
  // A concurrent attempt with another id is left alone; at start everything goes.
  header.upload_id = "upload-0002";
  auto other = uploads.Begin(header);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(Entries(datasets_.path()).size(), 2u);
  second->attempt->Abandon();
  other->attempt->Abandon();
  second->attempt.reset();
  other->attempt.reset();
  // Replicas sharing the folder keep staging written to within `min_idle`.
  const fs::path aged = fs::path(datasets_.path()) / Entries(datasets_.path())[0];
  const auto two_hours_ago = fs::file_time_type::clock::now() - std::chrono::hours(2);
  for (const auto &entry : fs::recursive_directory_iterator(aged)) {
    fs::last_write_time(entry.path(), two_hours_ago);
  }
  fs::last_write_time(aged, two_hours_ago);
  EXPECT_EQ(DatasetUploads::RemoveStagingDirectories(datasets_.path(), std::chrono::hours(1)), 1);
  ASSERT_EQ(Entries(datasets_.path()).size(), 1u);
  EXPECT_NE(fs::path(Entries(datasets_.path())[0]), aged.filename());
  EXPECT_EQ(DatasetUploads::RemoveStagingDirectories(datasets_.path()), 1);
  EXPECT_TRUE(Entries(datasets_.path()).empty());
}

TEST_F(UploadTest, MaskSizeMismatchIsRejectedNamingTheMask) {
  const Dataset ds = *OpenDataset(native_.path());
  ASSERT_TRUE(WriteMaskFile(ds.samples[2].mask_path, Mask::Create(16, 16)).ok());
  DatasetUploads uploads(datasets_.path(), limits_);
  ExpectRejected(
      Upload(uploads, native_.path(), FilesOf(native_.path()), "bad", UploadLayout::kNative),
      "masks/" + ds.samples[2].id + ".png", "size mismatch");
}

TEST_F(UploadTest, UndeclaredMaskValueIsRejectedNamingTheMask) {
  const Dataset ds = *OpenDataset(native_.path());
  Mask mask = *ReadMaskFile(ds.samples[1].mask_path);
  mask.ids[5] = 7;
  ASSERT_TRUE(WriteMaskFile(ds.samples[1].mask_path, mask).ok());
  DatasetUploads uploads(datasets_.path(), limits_);
  ExpectRejected(
      Upload(uploads, native_.path(), FilesOf(native_.path()), "bad", UploadLayout::kNative),
      "masks/" + ds.samples[1].id + ".png", "holds value 7");
}

TEST_F(UploadTest, UndecodableImageIsRejectedNamingIt) {
  const Dataset ds = *OpenDataset(native_.path());
  ASSERT_TRUE(common::WriteFileAtomically(ds.samples[0].image_path, "not a png at all").ok());
  DatasetUploads uploads(datasets_.path(), limits_);
  ExpectRejected(
      Upload(uploads, native_.path(), FilesOf(native_.path()), "bad", UploadLayout::kNative),
      "images/" + ds.samples[0].id + ".png", "unreadable file");
}

TEST_F(UploadTest, NnUnetLabelWithUndeclaredValueIsRejectedNamingIt) {
  Mask mask = *ReadMaskFile(nnunet_ / "labelsTr/synth_00003.png");
  mask.ids[0] = 9;
  ASSERT_TRUE(WriteMaskFile(nnunet_ / "labelsTr/synth_00003.png", mask).ok());
  DatasetUploads uploads(datasets_.path(), limits_);
  ExpectRejected(
      Upload(uploads, nnunet_.path(), FilesOf(nnunet_.path()), "bad", UploadLayout::kNnUnet),
      "labelsTr/synth_00003.png", "holds value 9");
}

TEST_F(UploadTest, AFileOutsideTheSetIsRejected) {
  ASSERT_TRUE(common::WriteFileAtomically(native_ / "masks/orphan.png", "x").ok());
  DatasetUploads uploads(datasets_.path(), limits_);
  ExpectRejected(
      Upload(uploads, native_.path(), FilesOf(native_.path()), "bad", UploadLayout::kNative),
      "masks/orphan.png", "not part of the data set");
}

// NIfTI volumes: an nnU-Net raw set of .nii.gz files as nnU-Net v2 writes one for MR.
class NiftiUploadTest : public UploadTest {
 protected:
  void SetUp() override {
    UploadTest::SetUp();
    SyntheticMrOptions options;
    options.dims = {16, 16, 4};
    ASSERT_TRUE(WriteSyntheticMrDataset(mr_.path(), 4, 9, options).ok());
    nlohmann::json manifest = nlohmann::json::parse(ReadAll(mr_ / "dataset.json"));
    manifest["nifti"] = {{"axis", 2}, {"normalization", "zscore"}};
    ASSERT_TRUE(common::WriteFileAtomically(mr_ / "dataset.json", manifest.dump()).ok());
  }
  TempDir mr_;
};

TEST_F(NiftiUploadTest, NnUnetVolumesArePublishedInTheNativeLayoutWithSplitsPerVolume) {
  DatasetUploads uploads(datasets_.path(), limits_);
  absl::StatusOr<Dataset> ds =
      Upload(uploads, mr_.path(), FilesOf(mr_.path()), "mr", UploadLayout::kNnUnet);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->samples.size(), 16u);
  EXPECT_EQ(ds->volumes[0].image_path,
            fs::canonical(datasets_.path()).string() + "/mr/images/mr_000.nii.gz");
  absl::StatusOr<Dataset> opened = OpenDataset(datasets_ / "mr");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->layout, "native");
  EXPECT_EQ(opened->channels, 1);
  EXPECT_EQ(opened->slicing.normalization, MrNormalization::kZScore) << "nifti key kept";
  ASSERT_EQ(opened->volumes.size(), 4u);
  EXPECT_TRUE(fs::exists(datasets_ / "mr/masks/mr_003.nii.gz"));
  EXPECT_FALSE(fs::exists(datasets_ / "mr/imagesTr"));
  // The splits the nnU-Net set opened with, per volume, written out as explicit lists.
  const Dataset original = *OpenDataset(mr_.path());
  EXPECT_EQ(opened->train, original.train);
  EXPECT_EQ(opened->val, original.val);
  EXPECT_EQ(opened->test, original.test);
  const nlohmann::json manifest = nlohmann::json::parse(ReadAll(datasets_ / "mr/dataset.json"));
  EXPECT_EQ(manifest["splits"]["train"].size() + manifest["splits"]["val"].size() +
                manifest["splits"]["test"].size(),
            4u);
  for (size_t i = 0; i < original.samples.size(); ++i) {
    EXPECT_EQ(LoadSample(*opened, static_cast<int>(i))->image,
              LoadSample(original, static_cast<int>(i))->image);
  }
}

TEST_F(NiftiUploadTest, ABadVolumeIsRejectedNamingTheFileAndTheProblem) {
  const std::string image = mr_ / "imagesTr/mr_002_0000.nii.gz";
  const std::string bytes = ReadAll(image);
  ASSERT_TRUE(common::WriteFileAtomically(image, bytes.substr(0, bytes.size() / 2)).ok());
  DatasetUploads uploads(datasets_.path(), limits_);
  ExpectRejected(Upload(uploads, mr_.path(), FilesOf(mr_.path()), "mr", UploadLayout::kNnUnet),
                 "imagesTr/mr_002_0000.nii.gz: truncated gzip stream", "");
  ASSERT_TRUE(common::WriteFileAtomically(image, bytes).ok());

  // Labels of another shape.
  const NiftiVolume like = *NewNiftiVolume({16, 16, 3}, ReadNifti(image)->sform);
  ASSERT_TRUE(
      WriteNiftiLabels(mr_ / "labelsTr/mr_001.nii.gz", like, std::vector<uint8_t>(16 * 16 * 3, 0))
          .ok());
  ExpectRejected(Upload(uploads, mr_.path(), FilesOf(mr_.path()), "mr", UploadLayout::kNnUnet),
                 "labelsTr/mr_001.nii.gz: shape 16x16x3 differs from its image "
                 "imagesTr/mr_001_0000.nii.gz",
                 "");
}

TEST_F(UploadTest, UnsafePathsAreRejected) {
  struct Case {
    std::string path, reason;
  };
  for (const Case &c : std::vector<Case>{{"../evil.png", "'..'"},
                                         {"images/../../evil.png", "'..'"},
                                         {"/etc/passwd", "absolute"},
                                         {"images/.hidden.png", "hidden"},
                                         {".upload.json", "hidden"},
                                         {"images/a b.png", "[A-Za-z0-9._-]"},
                                         {std::string("images/a\nb.png"), "[A-Za-z0-9._-]"},
                                         {"images//a.png", "empty path component"},
                                         {"images/x/a.png", "too deep"},
                                         {"other/a.png", "not part of the layout"},
                                         {"imagesTr/a_0000.png", "not part of the layout"},
                                         {"images/a.exe", "extension"},
                                         {"images/a.nii.bz2", "extension"},
                                         {"masks/a.jpg", ".png"},
                                         {"", "empty path"}}) {
    DatasetUploads uploads(datasets_.path(), limits_);
    UploadHeader header{"bad", UploadLayout::kNative, "upload-0001", 100, 2};
    auto begun = uploads.Begin(header);
    ASSERT_TRUE(begun.ok());
    absl::Status s = begun->attempt->Write(c.path, 0, "abc", true);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.path;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.reason)) << c.path;
    begun->attempt.reset();
    EXPECT_TRUE(Entries(datasets_.path()).empty()) << c.path;
    EXPECT_FALSE(fs::exists(datasets_.path() + "/../evil.png"));
  }
}

TEST_F(UploadTest, SizesAndCountsAreBoundedAndChecked) {
  limits_.max_dataset_bytes = 4096;
  limits_.max_file_bytes = 1000;
  DatasetUploads uploads(datasets_.path(), limits_);
  // The header's total is checked against the limit before anything is written.
  absl::Status s = uploads.Begin({"big", UploadLayout::kNative, "upload-0001", 5000, 3}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("--max_dataset_bytes"));
  EXPECT_EQ(uploads.Begin({"big", UploadLayout::kNative, "short", 10, 1}).status().code(),
            absl::StatusCode::kInvalidArgument)
      << "upload ids have at least 8 characters";

  auto begun = uploads.Begin({"big", UploadLayout::kNative, "upload-0001", 3000, 3});
  ASSERT_TRUE(begun.ok());
  UploadAttempt &a = *begun->attempt;
  EXPECT_THAT(std::string(a.Write("images/a.png", 0, std::string(1001, 'x'), true).message()),
              HasSubstr("per-file limit"));
  begun->attempt.reset();
  begun = uploads.Begin({"big", UploadLayout::kNative, "upload-0001", 1500, 3});
  ASSERT_TRUE(begun.ok());
  UploadAttempt &b = *begun->attempt;
  ASSERT_TRUE(b.Write("images/a.png", 0, std::string(900, 'x'), true).ok());
  EXPECT_THAT(std::string(b.Write("images/a.png", 0, "x", true).message()), HasSubstr("twice"));
  EXPECT_THAT(std::string(b.Write("masks/a.png", 5, "x", false).message()), HasSubstr("offset 5"));
  begun->attempt.reset();
  begun = uploads.Begin({"big", UploadLayout::kNative, "upload-0001", 1500, 3});
  UploadAttempt &c = *begun->attempt;
  ASSERT_TRUE(c.Write("images/a.png", 0, std::string(900, 'x'), true).ok());
  EXPECT_THAT(std::string(c.Write("masks/a.png", 0, std::string(700, 'x'), true).message()),
              HasSubstr("header.total_bytes"));
  begun->attempt.reset();
  begun = uploads.Begin({"big", UploadLayout::kNative, "upload-0001", 1500, 3});
  UploadAttempt &d = *begun->attempt;
  ASSERT_TRUE(d.Write("images/a.png", 0, "xx", false).ok());
  EXPECT_THAT(std::string(d.Publish().status().message()), HasSubstr("before its last chunk"));
  begun->attempt.reset();
  EXPECT_TRUE(Entries(datasets_.path()).empty());
}

}  // namespace
}  // namespace segserve::data
