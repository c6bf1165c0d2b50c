#include "server/model/checkpoint.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/model/state_dict.h"
#include "test_paths.h"
#include "tests/model/test_util.h"

namespace segserve::model {
namespace {

using ::testing::HasSubstr;

Unet SampleModel() {
  UnetConfig config;
  config.encoder = EncoderKind::kResNet18;
  config.skip_prune_level = 1;
  config.in_channels = 1;
  config.classes = 3;
  config.mean = {0.25f};
  config.std = {0.125f};
  Unet model(config);
  testing::RandomiseBatchNorm(model, 11);
  return model;
}

const nlohmann::json kMetadata = {{"created_at", "2024-05-01T12:00:00Z"},
                                  {"metrics", {{"val_iou", 0.8125}}},
                                  {"train_spec", {{"epochs", 50}, {"dataset", "plasmodium"}}}};

TEST(CheckpointTest, RoundTripIsBitExact) {
  Unet model = SampleModel();
  const std::string path = testing::MakeTempDir() + "/models/m/1/model.segckpt";
  ASSERT_TRUE(SaveCheckpoint(path, model, kMetadata).ok());
  auto loaded = LoadCheckpoint(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->info.config, model->config());
  EXPECT_EQ(loaded->info.metadata, kMetadata);
  EXPECT_FALSE(loaded->model->is_training());
  const StateDict a = GetStateDict(*model);
  const StateDict b = GetStateDict(*loaded->model);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second.scalar_type(), b[i].second.scalar_type()) << a[i].first;
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
  // Re-serialising the loaded model gives the identical file.
  auto original = common::ReadFile(path);
  auto again = SerializeCheckpoint(loaded->model, loaded->info.metadata);
  ASSERT_TRUE(original.ok() && again.ok());
  EXPECT_EQ(*original, *again);
}

TEST(CheckpointTest, InfoReadsConfigAndMetadataOnly) {
  Unet model = SampleModel();
  const std::string path = testing::MakeTempDir() + "/c.segckpt";
  ASSERT_TRUE(SaveCheckpoint(path, model, kMetadata).ok());
  auto info = ReadCheckpointInfo(path);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->config.classes, 3);
  EXPECT_EQ(info->metadata["metrics"]["val_iou"], 0.8125);
}

// tests/model/testdata/sha256_v0_checkpoint.segckpt: a small checkpoint (header, two tensors,
// 24 payload bytes) whose trailer the hand-written SHA-256 wrote before segserve moved to
// OpenSSL (sha256sum of the body agrees). Checkpoints on disk from those builds must load.
TEST(CheckpointTest, ChecksumWrittenByThePreviousSha256StillVerifies) {
  const std::string path =
      std::string(SEGSERVE_SOURCE_DIR) + "/tests/model/testdata/sha256_v0_checkpoint.segckpt";
  auto info = ReadCheckpointInfo(path);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->config.classes, 2);
  EXPECT_EQ(info->metadata["metrics"]["val_iou"], 0.8125);
  auto bytes = common::ReadFile(path);
  ASSERT_TRUE(bytes.ok());
  EXPECT_THAT(*bytes, ::testing::EndsWith(
                          "sha256:81ede39a9935c44b811427edf47b77d310889cec340be1d182ba3dba26ae2d8e"));
}

TEST(CheckpointTest, AlteredByteIsDataLoss) {
  Unet model = SampleModel();
  auto bytes = SerializeCheckpoint(model, kMetadata);
  ASSERT_TRUE(bytes.ok());
  for (size_t position : {size_t{12}, size_t{100}, bytes->size() / 2, bytes->size() - 100}) {
    std::string altered = *bytes;
    altered[position] ^= 0x01;
    auto loaded = ParseCheckpoint(altered);
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << position;
    EXPECT_THAT(loaded.status().message(), HasSubstr("checksum"));
  }
}

TEST(CheckpointTest, TruncatedFileIsDataLoss) {
  Unet model = SampleModel();
  auto bytes = SerializeCheckpoint(model, kMetadata);
  ASSERT_TRUE(bytes.ok());
  const std::string path = testing::MakeTempDir() + "/t.segckpt";
  for (size_t keep : {size_t{20}, bytes->size() / 3, bytes->size() - 1}) {
    ASSERT_TRUE(common::WriteFileAtomically(path, bytes->substr(0, keep)).ok());
    auto loaded = LoadCheckpoint(path);
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << keep;
    EXPECT_THAT(loaded.status().message(), HasSubstr(path));
  }
}

TEST(CheckpointTest, ForeignFileIsInvalidArgument) {
  EXPECT_EQ(ParseCheckpoint("PK\x03\x04 a zip file").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseCheckpoint("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadCheckpoint("/nonexistent/x.segckpt").status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckpointTest, FoldedModelIsRefused) {
  Unet model = SampleModel();
  model->eval();
  model->FoldBatchNorm();
  EXPECT_EQ(SerializeCheckpoint(model, {}).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace segserve::model
