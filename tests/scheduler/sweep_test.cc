// Sweeps: one child per configuration, parent state from the children, result table.
#include "server/scheduler/sweep.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/scheduler/scheduler.h"
#include "tests/scheduler/test_util.h"

namespace segserve::scheduler {
namespace {

using testing::Backend;
using ::testing::HasSubstr;
using testing::ScriptedRunner;
using testing::Spec;
using testing::StoreFactory;
using testing::WaitTerminal;

Job Child(const std::string& id, JobState state, const std::string& reason = "") {
  Job job;
  job.id = id;
  job.state = state;
  job.reason = reason;
  return job;
}

TEST(SweepOutcome, NotFinishedWhileAChildIsOpen) {
  auto outcome =
      SweepOutcomeOf({Child("a", JobState::kSucceeded), Child("b", JobState::kRunning)}, false);
  EXPECT_FALSE(outcome.finished);
  EXPECT_DOUBLE_EQ(outcome.progress.fraction, 0.5);
}

TEST(SweepOutcome, SucceededOnlyWhenEveryChildSucceeded) {
  auto ok =
      SweepOutcomeOf({Child("a", JobState::kSucceeded), Child("b", JobState::kSucceeded)}, false);
  EXPECT_TRUE(ok.finished);
  EXPECT_EQ(ok.state, JobState::kSucceeded);
  auto failed =
      SweepOutcomeOf({Child("a", JobState::kSucceeded), Child("b", JobState::kFailed, "diverged"),
                      Child("c", JobState::kCancelled, "cancelled by request")},
                     false);
  EXPECT_EQ(failed.state, JobState::kFailed);
  EXPECT_THAT(failed.reason, HasSubstr("2 of 3"));
  EXPECT_THAT(failed.reason, HasSubstr("b FAILED: diverged"));
  EXPECT_THAT(failed.reason, HasSubstr("c CANCELLED"));
}

TEST(SweepOutcome, CancelledSweepIsCancelled) {
  auto outcome =
      SweepOutcomeOf({Child("a", JobState::kSucceeded), Child("b", JobState::kCancelled)}, true);
  EXPECT_EQ(outcome.state, JobState::kCancelled);
}

class SweepTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(factory_.available().ok()) << factory_.available();
    clock_.Advance(std::chrono::hours(24 * 365 * 55));
    auto store = factory_.Open();
    ASSERT_TRUE(store.ok()) << store.status();
    auto scheduler =
        Scheduler::Create(std::move(*store), {{JobKind::kTrain, runner_}}, {}, &clock_, nullptr);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = std::move(*scheduler);
  }

  StoreFactory factory_{GetParam()};
  common::ManualClock clock_;
  std::shared_ptr<ScriptedRunner> runner_ = std::make_shared<ScriptedRunner>();
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_P(SweepTest, OneChildPerConfigurationAndAResultTable) {
  auto sweep = scheduler_->SubmitSweep(R"({"prune_levels":[0,1,2]})",
                                       {Spec("L0"), Spec("L1"), Spec("L2")}, 3);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(sweep->kind, JobKind::kSweep);
  ASSERT_EQ(sweep->child_ids.size(), 3u);
  for (const JobId& child : sweep->child_ids) {
    auto job = scheduler_->Get(child);
    ASSERT_TRUE(job.ok());
    EXPECT_EQ(job->parent_id, sweep->id);
    EXPECT_EQ(job->priority, 3);
  }
  auto done = WaitTerminal(*scheduler_, sweep->id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_DOUBLE_EQ(done->progress.fraction, 1.0);
  EXPECT_EQ(done->child_ids, sweep->child_ids);
  nlohmann::json table = nlohmann::json::parse(done->result_json);
  ASSERT_EQ(table["rows"].size(), 3u);
  EXPECT_EQ(table["succeeded"], 3);
  for (int i = 0; i < 3; ++i) {
    const auto& row = table["rows"][i];
    EXPECT_EQ(row["job_id"], sweep->child_ids[i]);
    EXPECT_EQ(row["state"], "SUCCEEDED");
    EXPECT_EQ(row["spec"]["name"], "L" + std::to_string(i));
    EXPECT_EQ(row["result"]["name"], "L" + std::to_string(i));
  }
}

// Watchers of the parent see its children's progress live: finished children count 1,
// running ones their own fraction; the message names the running child and its epoch.
TEST_P(SweepTest, ParentWatchersSeeTheRunningChildsProgress) {
  auto sweep = scheduler_->SubmitSweep(R"({"prune_levels":[0,1]})",
                                       {Spec("L0", 4, /*hold_before_epoch=*/1), Spec("L1")});
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  runner_->WaitHolding("L0");
  auto watch = scheduler_->Watch(sweep->id);
  ASSERT_TRUE(watch.ok()) << watch.status();
  runner_->Release("L0");
  std::optional<JobEvent> live;
  while (auto event = (*watch)->Next(std::chrono::seconds(10))) {
    if (event->terminal) break;
    if (event->job.progress.steps == 2 && !live) live = event;
  }
  ASSERT_TRUE(live.has_value()) << "no live progress event on the parent";
  EXPECT_EQ(live->job.id, sweep->id);
  EXPECT_EQ(live->job.progress.step, 0);                 // no child finished yet
  EXPECT_DOUBLE_EQ(live->job.progress.fraction, 0.125);  // L0 at epoch 1 of 4, of 2 children
  EXPECT_THAT(live->message, ::testing::HasSubstr("0/2 configurations done; running " +
                                                  sweep->child_ids[0] + " epoch 1/4"));
  auto done = WaitTerminal(*scheduler_, sweep->id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kSucceeded);
}

// Get and List (what `segctl jobs list/get` show) carry the same live progress: the parent's
// row stores none, it is derived from the children while they run.
TEST_P(SweepTest, GetAndListShowTheParentsProgressFromItsChildren) {
  auto sweep = scheduler_->SubmitSweep(R"({"prune_levels":[0,1]})",
                                       {Spec("L0", 4, /*hold_before_epoch=*/2), Spec("L1")});
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  runner_->WaitHolding("L0");  // epoch 1 of 4 reported
  auto got = scheduler_->Get(sweep->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state, JobState::kRunning);
  EXPECT_EQ(got->progress.step, 0);
  EXPECT_EQ(got->progress.steps, 2);
  EXPECT_DOUBLE_EQ(got->progress.fraction, 0.125);
  JobFilter filter;
  filter.kind = JobKind::kSweep;
  auto listed = scheduler_->List(filter);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_DOUBLE_EQ(listed->front().progress.fraction, 0.125);
  runner_->Release("L0");
  auto done = WaitTerminal(*scheduler_, sweep->id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_DOUBLE_EQ(scheduler_->Get(sweep->id)->progress.fraction, 1.0);
}

TEST_P(SweepTest, AFailedChildFailsTheParentWithTheReason) {
  auto sweep = scheduler_->SubmitSweep("{}", {Spec("L0"), Spec("L1", 1, 0, "NaN loss")});
  ASSERT_TRUE(sweep.ok());
  auto done = WaitTerminal(*scheduler_, sweep->id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_THAT(done->reason, HasSubstr(sweep->child_ids[1]));
  EXPECT_THAT(done->reason, HasSubstr("NaN loss"));
  nlohmann::json table = nlohmann::json::parse(done->result_json);
  EXPECT_EQ(table["succeeded"], 1);
  EXPECT_EQ(table["failed"], 1);
}

TEST_P(SweepTest, CancellingTheSweepCancelsRunningAndQueuedChildren) {
  auto sweep = scheduler_->SubmitSweep("{}", {Spec("L0", 3, 2), Spec("L1"), Spec("L2")});
  ASSERT_TRUE(sweep.ok());
  runner_->WaitHolding("L0");
  EXPECT_EQ(scheduler_->Get(sweep->id)->state, JobState::kRunning);
  ASSERT_TRUE(scheduler_->Cancel(sweep->id).ok());
  auto done = WaitTerminal(*scheduler_, sweep->id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kCancelled);
  for (const JobId& child : sweep->child_ids) {
    EXPECT_EQ(scheduler_->Get(child)->state, JobState::kCancelled);
  }
  EXPECT_THAT(runner_->started(), ::testing::ElementsAre("L0"));
}

INSTANTIATE_TEST_SUITE_P(Sqlite, SweepTest, ::testing::Values(Backend::kSqlite));
INSTANTIATE_TEST_SUITE_P(Postgres, SweepTest, ::testing::Values(Backend::kPostgres));

}  // namespace
}  // namespace segserve::scheduler
