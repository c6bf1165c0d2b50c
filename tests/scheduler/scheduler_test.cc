// Scheduler lifecycle on each real job store (SQLite file, PostgreSQL database) with the
// scripted Runner double.
#include "server/scheduler/scheduler.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/test_util.h"

namespace segserve::scheduler {
namespace {

using testing::Backend;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ScriptedRunner;
using testing::Spec;
using testing::StoreFactory;
using testing::WaitTerminal;

class SchedulerTest : public ::testing::TestWithParam<Backend> {
 protected:
  // A ManualClock starts at the Unix epoch, which job records read as "not reached".
  SchedulerTest() { clock_.Advance(std::chrono::hours(24 * 365 * 55)); }
  void SetUp() override { ASSERT_TRUE(factory_.available().ok()) << factory_.available(); }

  std::unique_ptr<Scheduler> Make(SchedulerOptions options = {}) {
    auto store = factory_.Open();
    EXPECT_TRUE(store.ok()) << store.status();
    RunnerMap runners = {{JobKind::kTrain, runner_}, {JobKind::kSynth, runner_}};
    auto scheduler = Scheduler::Create(std::move(*store), runners, options, &clock_, &metrics_);
    EXPECT_TRUE(scheduler.ok()) << scheduler.status();
    return std::move(*scheduler);
  }
  Job Reopened(const JobId& id) {
    auto store = factory_.Open();
    EXPECT_TRUE(store.ok());
    return *(*store)->Get(id);
  }

  StoreFactory factory_{GetParam()};
  common::ManualClock clock_;
  metrics::Metrics metrics_;
  std::shared_ptr<ScriptedRunner> runner_ = std::make_shared<ScriptedRunner>();
};

TEST_P(SchedulerTest, SubmittedJobGoesQueuedRunningSucceeded) {
  auto scheduler = Make();
  auto job = scheduler->Submit(JobKind::kTrain, Spec("a", 2, /*hold=*/1), 0);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_THAT(job->id, ::testing::StartsWith("job-"));
  // Acknowledged means durable: the row is in the file already.
  EXPECT_EQ(Reopened(job->id).id, job->id);

  runner_->WaitHolding("a");
  EXPECT_EQ(scheduler->Get(job->id)->state, JobState::kRunning);
  EXPECT_EQ(Reopened(job->id).state, JobState::kRunning);
  runner_->Release("a");

  auto done = WaitTerminal(*scheduler, job->id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(done->last_completed_epoch, 2);
  EXPECT_THAT(done->result_json, HasSubstr(R"("name":"a")"));
  EXPECT_EQ(done->started, clock_.WallNow());  // Stamped by the injected clock.
  EXPECT_EQ(done->finished, clock_.WallNow());
  Job stored = Reopened(job->id);
  EXPECT_EQ(stored.state, JobState::kSucceeded);
  EXPECT_EQ(stored.result_json, done->result_json);
  EXPECT_EQ(stored.progress.epoch, 2);
}

TEST_P(SchedulerTest, HigherPriorityRunsFirstThenFifo) {
  auto scheduler = Make();
  // "gate" occupies the only slot while the others queue up.
  auto gate = scheduler->Submit(JobKind::kTrain, Spec("gate", 1, 1), 0);
  ASSERT_TRUE(gate.ok());
  runner_->WaitHolding("gate");
  std::vector<JobId> ids;
  for (auto [name, priority] : std::vector<std::pair<std::string, int>>{
           {"low1", 0}, {"high1", 5}, {"low2", 0}, {"high2", 5}, {"mid", 2}}) {
    auto job = scheduler->Submit(JobKind::kTrain, Spec(name), priority);
    ASSERT_TRUE(job.ok());
    ids.push_back(job->id);
  }
  runner_->Release("gate");
  for (const JobId& id : ids) ASSERT_TRUE(WaitTerminal(*scheduler, id).ok());
  EXPECT_THAT(runner_->started(), ElementsAre("gate", "high1", "high2", "mid", "low1", "low2"));
}

TEST_P(SchedulerTest, OneSlotRunsOneJobAtATime) {
  auto scheduler = Make();
  auto first = scheduler->Submit(JobKind::kTrain, Spec("first", 1, 1));
  auto second = scheduler->Submit(JobKind::kTrain, Spec("second"));
  ASSERT_TRUE(first.ok() && second.ok());
  runner_->WaitHolding("first");
  EXPECT_EQ(scheduler->Get(second->id)->state, JobState::kQueued);
  EXPECT_EQ(testing::MetricValue(metrics_, "segserve_job_queue_depth"), 1);
  runner_->Release("first");
  ASSERT_EQ(WaitTerminal(*scheduler, second->id)->state, JobState::kSucceeded);
  EXPECT_EQ(runner_->concurrent_max(), 1);
}

TEST_P(SchedulerTest, TwoSlotsRunTwoJobsAtOnce) {
  SchedulerOptions options;
  options.training_slots = 2;
  auto scheduler = Make(options);
  auto a = scheduler->Submit(JobKind::kTrain, Spec("a", 1, 1));
  auto b = scheduler->Submit(JobKind::kTrain, Spec("b", 1, 1));
  auto c = scheduler->Submit(JobKind::kTrain, Spec("c", 1, 1));
  runner_->WaitHolding("a");
  runner_->WaitHolding("b");
  EXPECT_EQ(scheduler->Get(c->id)->state, JobState::kQueued);
  runner_->ReleaseAll();
  ASSERT_EQ(WaitTerminal(*scheduler, c->id)->state, JobState::kSucceeded);
  EXPECT_EQ(runner_->concurrent_max(), 2);
}

TEST_P(SchedulerTest, FullQueueIsResourceExhaustedNamingTheLimit) {
  SchedulerOptions options;
  options.max_queued_jobs = 2;
  auto scheduler = Make(options);
  ASSERT_TRUE(scheduler->Submit(JobKind::kTrain, Spec("run", 1, 1)).ok());
  runner_->WaitHolding("run");  // Running jobs do not count against the queue.
  ASSERT_TRUE(scheduler->Submit(JobKind::kTrain, Spec("q1")).ok());
  ASSERT_TRUE(scheduler->Submit(JobKind::kTrain, Spec("q2")).ok());
  auto refused = scheduler->Submit(JobKind::kTrain, Spec("q3"));
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("max_queued_jobs=2"));
  auto sweep = scheduler->SubmitSweep("{}", {Spec("s1")});
  EXPECT_EQ(sweep.status().code(), absl::StatusCode::kResourceExhausted);
  runner_->ReleaseAll();
}

TEST_P(SchedulerTest, BadSubmissionsAreRefused) {
  auto scheduler = Make();
  EXPECT_EQ(scheduler->Submit(JobKind::kSweep, "{}").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler->Submit(JobKind::kAnalysis, "{}").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler->SubmitSweep("{}", {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler->Get("job-unknown").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler->Cancel("job-unknown").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler->Watch("job-unknown").status().code(), absl::StatusCode::kNotFound);
  SchedulerOptions bad;
  bad.training_slots = 0;
  auto store = factory_.Open();
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(Scheduler::Create(std::move(*store), {}, bad, &clock_, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(SchedulerTest, CancelledQueuedJobNeverStarts) {
  auto scheduler = Make();
  auto gate = scheduler->Submit(JobKind::kTrain, Spec("gate", 1, 1));
  auto victim = scheduler->Submit(JobKind::kTrain, Spec("victim"));
  auto after = scheduler->Submit(JobKind::kTrain, Spec("after"));
  runner_->WaitHolding("gate");
  auto cancelled = scheduler->Cancel(victim->id);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  EXPECT_EQ(Reopened(victim->id).state, JobState::kCancelled);
  runner_->Release("gate");
  ASSERT_EQ(WaitTerminal(*scheduler, after->id)->state, JobState::kSucceeded);
  EXPECT_THAT(runner_->started(), ElementsAre("gate", "after"));
  // Cancelling a finished job is a no-op.
  EXPECT_EQ(scheduler->Cancel(after->id)->state, JobState::kSucceeded);
}

TEST_P(SchedulerTest, CancelledRunningJobStopsAtNextCheck) {
  auto scheduler = Make();
  auto job = scheduler->Submit(JobKind::kTrain, Spec("a", 5, 3));
  runner_->WaitHolding("a");
  auto cancelling = scheduler->Cancel(job->id);
  ASSERT_TRUE(cancelling.ok());
  EXPECT_TRUE(cancelling->cancel_requested);
  auto done = WaitTerminal(*scheduler, job->id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kCancelled);
  EXPECT_TRUE(runner_->saw_cancel("a"));
  EXPECT_THAT(runner_->epochs_run("a"), ElementsAre(1, 2));
  Job stored = Reopened(job->id);
  EXPECT_EQ(stored.state, JobState::kCancelled);
  EXPECT_EQ(stored.last_completed_epoch, 2);  // The last checkpoint is kept.
}

TEST_P(SchedulerTest, RunnerErrorFailsTheJobWithItsReason) {
  auto scheduler = Make();
  auto job = scheduler->Submit(JobKind::kTrain, Spec("a", 1, 0, "out of disk"));
  auto done = WaitTerminal(*scheduler, job->id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_THAT(done->reason, HasSubstr("out of disk"));
  EXPECT_THAT(Reopened(job->id).reason, HasSubstr("out of disk"));
}

TEST_P(SchedulerTest, ListIsNewestFirstAndFilters) {
  auto scheduler = Make();
  auto a = scheduler->Submit(JobKind::kTrain, Spec("a"));
  ASSERT_TRUE(WaitTerminal(*scheduler, a->id).ok());
  auto b = scheduler->Submit(JobKind::kSynth, Spec("b"));
  ASSERT_TRUE(WaitTerminal(*scheduler, b->id).ok());
  auto all = scheduler->List({});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, b->id);
  JobFilter filter;
  filter.kind = JobKind::kTrain;
  ASSERT_EQ(scheduler->List(filter)->size(), 1u);
  EXPECT_EQ(scheduler->List(filter)->front().id, a->id);
}

TEST_P(SchedulerTest, MetricsFollowStateChanges) {
  auto scheduler = Make();
  auto job = scheduler->Submit(JobKind::kTrain, Spec("a", 3, 3));
  runner_->WaitHolding("a");
  EXPECT_EQ(testing::MetricValue(metrics_, "segserve_training_jobs", {{"state", "RUNNING"}}), 1);
  EXPECT_EQ(testing::MetricValue(metrics_, "segserve_training_epoch", {{"job_id", job->id}}), 2);
  EXPECT_DOUBLE_EQ(testing::MetricValue(metrics_, "segserve_training_val_iou", {{"job_id", job->id}}),
                   0.2);
  EXPECT_EQ(testing::MetricValue(metrics_, "segserve_training_images_total"), 16);
  runner_->Release("a");
  ASSERT_TRUE(WaitTerminal(*scheduler, job->id).ok());
  EXPECT_EQ(testing::MetricValue(metrics_, "segserve_training_jobs", {{"state", "RUNNING"}}), 0);
  EXPECT_EQ(testing::MetricValue(metrics_, "segserve_training_jobs", {{"state", "SUCCEEDED"}}), 1);
  EXPECT_EQ(testing::MetricValue(metrics_, "segserve_job_queue_depth"), 0);
  // Per-job series go away with the job.
  EXPECT_EQ(testing::MetricValue(metrics_, "segserve_training_epoch", {{"job_id", job->id}}), -1);
}

TEST_P(SchedulerTest, ProgressIsPersistedAtMostEveryIntervalAndAtEpochEnds) {
  SchedulerOptions options;
  options.progress_persist_interval = std::chrono::minutes(1);
  auto scheduler = Make(options);
  auto job = scheduler->Submit(JobKind::kTrain, Spec("a", 2, 2));
  runner_->WaitHolding("a");
  // Epoch 1 ended: persisted with it.
  EXPECT_EQ(Reopened(job->id).progress.epoch, 1);
  EXPECT_EQ(Reopened(job->id).last_completed_epoch, 1);
  runner_->Release("a");
  ASSERT_TRUE(WaitTerminal(*scheduler, job->id).ok());
}

INSTANTIATE_TEST_SUITE_P(Sqlite, SchedulerTest, ::testing::Values(Backend::kSqlite));
INSTANTIATE_TEST_SUITE_P(Postgres, SchedulerTest, ::testing::Values(Backend::kPostgres));

}  // namespace
}  // namespace segserve::scheduler
