// Run-directory retention and job purging (issue 19) on a real scheduler and jobs.db, with
// a ManualClock for ages.
#include "server/lifecycle/retention.h"

#include <condition_variable>
#include <mutex>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "tests/lifecycle/fixture.h"

namespace segserve::lifecycle {
namespace {

using std::chrono::hours;
using std::chrono::seconds;
using testing::LifecycleFixture;

class RetentionTest : public LifecycleFixture {
 protected:
  void Make(KeepCheckpoints keep) {
    RetentionOptions options;
    options.data_dir = data_dir();
    options.keep = keep;
    options.failed_run_retention = hours(24 * 7);
    options.on_change = [this] { ++changes_; };
    retention_ = std::make_unique<RunRetention>(options, &clock_);
    MakeScheduler([this](const scheduler::Job& job) {
      retention_->OnJobFinished(job);
      std::lock_guard<std::mutex> lock(mu_);
      retained_.insert(job.id);
      cv_.notify_all();
    });
    retention_->Attach(scheduler_.get());
  }
  ~RetentionTest() override { scheduler_.reset(); }

  // The job's terminal event, then the end of its retention: a Watch that starts after the
  // job's row turned terminal sees that state at once, possibly a few milliseconds before the
  // worker has applied retention (the scheduler runs on_finished after updating the row).
  scheduler::Job Run(const std::string& outcome) {
    scheduler::Job job = LifecycleFixture::Run(outcome);
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(
        cv_.wait_for(lock, std::chrono::seconds(60), [&] { return retained_.count(job.id) > 0; }))
        << "retention never ran for " << job.id;
    return job;
  }

  std::unique_ptr<RunRetention> retention_;
  int changes_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> retained_;
};

TEST_F(RetentionTest, ASucceededJobKeepsNoCheckpointsByDefault) {
  Make(KeepCheckpoints::kNone);
  const scheduler::Job job = Run("succeed");
  ASSERT_EQ(job.state, scheduler::JobState::kSucceeded);
  for (const char* gone : {"latest.ckpt", "latest.optim", "best.ckpt"}) {
    EXPECT_FALSE(Exists(RunDir(job.id) + "/" + gone)) << gone;
  }
  EXPECT_TRUE(Exists(RunDir(job.id) + "/registered.json"));
  EXPECT_TRUE(Exists(RunDir(job.id) + "/train.log"));
  EXPECT_GE(changes_, 1);
}

TEST_F(RetentionTest, KeepBestKeepsOnlyTheBestCheckpoint) {
  Make(KeepCheckpoints::kBest);
  const scheduler::Job job = Run("succeed");
  EXPECT_TRUE(Exists(RunDir(job.id) + "/best.ckpt"));
  EXPECT_FALSE(Exists(RunDir(job.id) + "/latest.ckpt"));
  EXPECT_FALSE(Exists(RunDir(job.id) + "/latest.optim"));
}

TEST_F(RetentionTest, KeepAllKeepsEverything) {
  Make(KeepCheckpoints::kAll);
  const scheduler::Job job = Run("succeed");
  for (const char* kept : {"latest.ckpt", "latest.optim", "best.ckpt", "registered.json"}) {
    EXPECT_TRUE(Exists(RunDir(job.id) + "/" + kept)) << kept;
  }
}

TEST_F(RetentionTest, AFailedJobKeepsItsRunUntilTheRetentionEnds) {
  Make(KeepCheckpoints::kNone);
  const scheduler::Job job = Run("fail");
  ASSERT_EQ(job.state, scheduler::JobState::kFailed);
  EXPECT_TRUE(Exists(RunDir(job.id) + "/latest.ckpt")) << "kept for inspection";
  clock_.Advance(hours(24 * 7) - seconds(1));
  auto swept = retention_->Sweep();
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_TRUE(swept->removed_run_dirs.empty());
  EXPECT_TRUE(Exists(RunDir(job.id) + "/latest.ckpt"));
  clock_.Advance(seconds(2));
  swept = retention_->Sweep();
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_THAT(swept->removed_run_dirs, ::testing::ElementsAre(job.id));
  EXPECT_EQ(swept->freed_bytes, 4000);
  EXPECT_FALSE(Exists(RunDir(job.id)));
  EXPECT_EQ(scheduler_->Get(job.id)->state, scheduler::JobState::kFailed) << "record stays";
}

TEST_F(RetentionTest, ACancelledJobKeepsItsRunUntilTheRetentionEnds) {
  Make(KeepCheckpoints::kNone);
  auto job = scheduler_->Submit(scheduler::JobKind::kTrain, R"({"outcome":"hold"})");
  ASSERT_TRUE(job.ok());
  runner_->WaitHolding(job->id);
  ASSERT_TRUE(scheduler_->Cancel(job->id).ok());
  auto done = scheduler::testing::WaitTerminal(*scheduler_, job->id);
  ASSERT_EQ(done->state, scheduler::JobState::kCancelled);
  EXPECT_TRUE(Exists(RunDir(job->id) + "/latest.ckpt"));
  ASSERT_TRUE(retention_->Sweep().ok());
  EXPECT_TRUE(Exists(RunDir(job->id) + "/latest.ckpt"));
  clock_.Advance(hours(24 * 7) + seconds(1));
  ASSERT_TRUE(retention_->Sweep().ok());
  EXPECT_FALSE(Exists(RunDir(job->id)));
}

TEST_F(RetentionTest, TheSweepNeverTouchesAQueuedOrRunningJob) {
  Make(KeepCheckpoints::kNone);
  auto running = scheduler_->Submit(scheduler::JobKind::kTrain, R"({"outcome":"hold"})");
  auto queued = scheduler_->Submit(scheduler::JobKind::kTrain, R"({"outcome":"succeed"})");
  ASSERT_TRUE(running.ok() && queued.ok());
  runner_->WaitHolding(running->id);
  testing::WriteBytes(RunDir(queued->id) + "/latest.ckpt", 10);  // e.g. an earlier attempt's
  clock_.Advance(hours(24 * 365));
  ASSERT_TRUE(retention_->Sweep().ok());
  auto purged = retention_->Purge(seconds(0));
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_TRUE(purged->jobs.empty());
  EXPECT_TRUE(Exists(RunDir(running->id) + "/latest.ckpt"));
  EXPECT_TRUE(Exists(RunDir(queued->id) + "/latest.ckpt"));
  runner_->Release(running->id);
  ASSERT_TRUE(scheduler::testing::WaitTerminal(*scheduler_, queued->id).ok());
}

TEST_F(RetentionTest, PurgeRemovesFinishedJobsOlderThanTheAgeWithTheirFiles) {
  Make(KeepCheckpoints::kAll);
  const scheduler::Job old_ok = Run("succeed");
  const scheduler::Job old_failed = Run("fail");
  clock_.Advance(hours(24 * 31));
  const scheduler::Job recent = Run("succeed");
  auto running = scheduler_->Submit(scheduler::JobKind::kTrain, R"({"outcome":"hold"})");
  ASSERT_TRUE(running.ok());
  runner_->WaitHolding(running->id);

  auto purged = retention_->Purge(hours(24 * 30));
  ASSERT_TRUE(purged.ok()) << purged.status();
  std::vector<std::string> ids;
  for (const auto& job : purged->jobs) ids.push_back(job.id);
  EXPECT_THAT(ids, ::testing::UnorderedElementsAre(old_ok.id, old_failed.id));
  EXPECT_EQ(purged->freed_bytes, 4010 + 4000);
  for (const auto& job : {old_ok, old_failed}) {
    EXPECT_EQ(scheduler_->Get(job.id).status().code(), absl::StatusCode::kNotFound);
    EXPECT_FALSE(Exists(RunDir(job.id)));
  }
  EXPECT_TRUE(scheduler_->Get(recent.id).ok());
  EXPECT_TRUE(Exists(RunDir(recent.id)));
  // The records are gone from the file, not only from memory.
  auto reopened = scheduler::SqliteJobStore::Open(data_dir() + "/jobs.db");
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->Get(old_ok.id).status().code(), absl::StatusCode::kNotFound);

  purged = retention_->Purge(seconds(0));
  ASSERT_TRUE(purged.ok());
  ASSERT_EQ(purged->jobs.size(), 1u);
  EXPECT_EQ(purged->jobs[0].id, recent.id);
  EXPECT_EQ(scheduler_->Get(running->id)->state, scheduler::JobState::kRunning);
  EXPECT_TRUE(Exists(RunDir(running->id)));
  runner_->Release(running->id);
  ASSERT_TRUE(scheduler::testing::WaitTerminal(*scheduler_, running->id).ok());
  EXPECT_EQ(retention_->Purge(seconds(-1)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RetentionTest, ASweepIsPurgedWithItsChildrenOnly) {
  Make(KeepCheckpoints::kAll);
  auto sweep = scheduler_->SubmitSweep("{}", {R"({"outcome":"succeed"})", R"({"outcome":"fail"})"});
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_TRUE(scheduler::testing::WaitTerminal(*scheduler_, sweep->id).ok());
  clock_.Advance(hours(1));
  auto purged = retention_->Purge(seconds(60));
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(purged->jobs.size(), 3u);
  for (const auto& child : sweep->child_ids) {
    EXPECT_EQ(scheduler_->Get(child).status().code(), absl::StatusCode::kNotFound);
    EXPECT_FALSE(Exists(RunDir(child)));
  }
}

TEST_F(RetentionTest, TheSweepRemovesRunDirectoriesOfUnknownJobs) {
  Make(KeepCheckpoints::kAll);
  const scheduler::Job kept = Run("succeed");
  testing::WriteBytes(RunDir("job-gone") + "/latest.ckpt", 100);
  auto swept = retention_->Sweep();
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_THAT(swept->removed_run_dirs, ::testing::ElementsAre("job-gone"));
  EXPECT_FALSE(Exists(RunDir("job-gone")));
  EXPECT_TRUE(Exists(RunDir(kept.id) + "/latest.ckpt"));
}

TEST(KeepCheckpointsTest, ParsesTheThreeValuesOnly) {
  EXPECT_EQ(*ParseKeepCheckpoints("none"), KeepCheckpoints::kNone);
  EXPECT_EQ(*ParseKeepCheckpoints("best"), KeepCheckpoints::kBest);
  EXPECT_EQ(*ParseKeepCheckpoints("all"), KeepCheckpoints::kAll);
  EXPECT_EQ(ParseKeepCheckpoints("latest").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segserve::lifecycle
