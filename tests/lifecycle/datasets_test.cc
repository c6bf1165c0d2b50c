// Datasets.Delete's rules (issue 19): refused while a queued or running job uses the set,
// atomic removal otherwise.
#include "server/lifecycle/datasets.h"

#include "tests/lifecycle/fixture.h"

namespace segserve::lifecycle {
namespace {

using testing::LifecycleFixture;

class DatasetDeleteTest : public LifecycleFixture {
 protected:
  void SetUp() override {
    MakeScheduler();
    auto index = data::DatasetIndex::Open(data_dir() + "/datasets", {});
    ASSERT_TRUE(index.ok()) << index.status();
    index_ = *std::move(index);
    testing::WriteBytes(data_dir() + "/datasets/ds/images/0.png", 500);
    testing::WriteBytes(data_dir() + "/datasets/ds/manifest.json", 20);
  }
  ~DatasetDeleteTest() override { scheduler_.reset(); }

  std::unique_ptr<data::DatasetIndex> index_;
};

TEST_F(DatasetDeleteTest, RefusedWhileARunningOrQueuedJobUsesItNamingTheJob) {
  auto running =
      scheduler_->Submit(scheduler::JobKind::kTrain, R"({"outcome":"hold","dataset":"other"})");
  ASSERT_TRUE(running.ok());
  runner_->WaitHolding(running->id);
  // Queued behind it (one slot); uses "ds" as a cross-domain set.
  auto queued = scheduler_->Submit(
      scheduler::JobKind::kTrain,
      R"({"outcome":"succeed","dataset":"x","cross_domain":[{"dataset":"ds"}]})");
  ASSERT_TRUE(queued.ok());
  auto refused = DeleteDataset(*index_, "ds", *scheduler_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find(queued->id), std::string::npos) << refused.status();
  EXPECT_NE(refused.status().message().find("QUEUED"), std::string::npos);
  testing::WriteBytes(data_dir() + "/datasets/other/manifest.json", 20);
  auto refused_running = DeleteDataset(*index_, "other", *scheduler_);
  EXPECT_EQ(refused_running.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused_running.status().message().find(running->id), std::string::npos);
  EXPECT_TRUE(Exists(data_dir() + "/datasets/ds/manifest.json"));

  runner_->Release(running->id);
  ASSERT_TRUE(scheduler::testing::WaitTerminal(*scheduler_, queued->id).ok());
  auto freed = DeleteDataset(*index_, "ds", *scheduler_);
  ASSERT_TRUE(freed.ok()) << freed.status();
  EXPECT_EQ(*freed, 520);
  EXPECT_FALSE(Exists(data_dir() + "/datasets/ds"));
  for (const auto& entry : std::filesystem::directory_iterator(data_dir() + "/datasets")) {
    EXPECT_NE(entry.path().filename().string().rfind(".deleted-", 0), 0u) << "tombstone left";
  }
}

TEST_F(DatasetDeleteTest, AGenerationJobWritingTheSetBlocksIt) {
  auto synth = scheduler_->Submit(scheduler::JobKind::kSynth, R"({"outcome":"hold","name":"ds"})");
  ASSERT_TRUE(synth.ok());
  runner_->WaitHolding(synth->id);
  EXPECT_EQ(DeleteDataset(*index_, "ds", *scheduler_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  runner_->Release(synth->id);
  ASSERT_TRUE(scheduler::testing::WaitTerminal(*scheduler_, synth->id).ok());
}

TEST_F(DatasetDeleteTest, UnknownAndBadNames) {
  EXPECT_EQ(DeleteDataset(*index_, "nope", *scheduler_).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(DeleteDataset(*index_, "../runs", *scheduler_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DeleteDataset(*index_, ".deleted-x", *scheduler_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DatasetsUsedByTest, ReadsTrainAnalysisAndSynthSpecs) {
  scheduler::Job train;
  train.kind = scheduler::JobKind::kTrain;
  train.spec_json = R"({"dataset":"a","cross_domain":[{"dataset":"b","shift":"x"}]})";
  EXPECT_EQ(DatasetsUsedBy(train), (std::vector<std::string>{"a", "b"}));
  scheduler::Job analysis;
  analysis.kind = scheduler::JobKind::kAnalysis;
  analysis.spec_json =
      R"({"models":[{"name":"m"}],"source":{"dataset":"s"},"target":{"dataset":"t"}})";
  EXPECT_EQ(DatasetsUsedBy(analysis), (std::vector<std::string>{"s", "t"}));
  scheduler::Job synth;
  synth.kind = scheduler::JobKind::kSynth;
  synth.spec_json = R"({"name":"new","n":5})";
  EXPECT_EQ(DatasetsUsedBy(synth), (std::vector<std::string>{"new"}));
}

}  // namespace
}  // namespace segserve::lifecycle
