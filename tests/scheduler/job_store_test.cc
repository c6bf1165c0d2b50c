// The JobStore contract on both backends (a real SQLite file; a real PostgreSQL database):
// round trips, ordering, transactions, reopening. Backend-specific behaviour lives in
// sqlite_job_store_test.cc and postgres_job_store_test.cc.
#include "server/scheduler/job_store.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/test_util.h"

namespace segserve::scheduler {
namespace {

using testing::Backend;
using testing::MakeJob;
using ::testing::ElementsAre;
using testing::StoreFactory;

std::vector<std::string> Ids(const std::vector<Job>& jobs) {
  std::vector<std::string> ids;
  for (const Job& job : jobs) ids.push_back(job.id);
  return ids;
}

class JobStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(factory_.available().ok()) << factory_.available();
    auto opened = factory_.Open();
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
  }

  StoreFactory factory_{GetParam()};
  std::unique_ptr<JobStore> store_;
};

TEST_P(JobStoreTest, InsertThenGetRoundTripsEveryField) {
  Job job = MakeJob("a", 3);
  ASSERT_TRUE(store_->Insert({job}).ok());
  job.state = JobState::kFailed;
  job.reason = "boom";
  job.started = TimePoint(std::chrono::milliseconds(1700000001000));
  job.finished = TimePoint(std::chrono::milliseconds(1700000002000));
  job.result_json = R"({"iou":0.5})";
  job.progress.epoch = 4;
  job.progress.val_iou = 0.25;
  job.restarts = 2;
  job.last_completed_epoch = 3;
  job.cancel_requested = true;
  ASSERT_TRUE(store_->Update(job).ok());

  auto got = store_->Get("a");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state, JobState::kFailed);
  EXPECT_EQ(got->reason, "boom");
  EXPECT_EQ(got->priority, 3);
  EXPECT_EQ(got->created, job.created);
  EXPECT_EQ(got->started, job.started);
  EXPECT_EQ(got->finished, job.finished);
  EXPECT_EQ(got->spec_json, job.spec_json);
  EXPECT_EQ(got->result_json, job.result_json);
  EXPECT_EQ(got->progress.epoch, 4);
  EXPECT_DOUBLE_EQ(got->progress.val_iou, 0.25);
  EXPECT_EQ(got->restarts, 2);
  EXPECT_EQ(got->last_completed_epoch, 3);
  EXPECT_TRUE(got->cancel_requested);
}

TEST_P(JobStoreTest, UnknownIdsAndDuplicates) {
  EXPECT_EQ(store_->Get("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Update(MakeJob("nope")).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->Insert({MakeJob("a")}).ok());
  EXPECT_EQ(store_->Insert({MakeJob("b"), MakeJob("a")}).code(), absl::StatusCode::kAlreadyExists);
  // The batch is one transaction: "b" was rolled back with the duplicate.
  EXPECT_EQ(store_->Get("b").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(JobStoreTest, NextRunnableIsHighestPriorityThenOldestAndSkipsSweeps) {
  ASSERT_TRUE(store_
                  ->Insert({MakeJob("sweep", 9, JobKind::kSweep), MakeJob("low1", 0),
                            MakeJob("high1", 5), MakeJob("high2", 5), MakeJob("low2", 0)})
                  .ok());
  std::vector<std::string> order;
  while (true) {
    auto next = store_->NextRunnable();
    ASSERT_TRUE(next.ok());
    if (!next->has_value()) break;
    Job job = **next;
    order.push_back(job.id);
    job.state = JobState::kRunning;
    ASSERT_TRUE(store_->Update(job).ok());
  }
  EXPECT_THAT(order, ElementsAre("high1", "high2", "low1", "low2"));
}

TEST_P(JobStoreTest, ListFiltersNewestFirstWithLimitAndChildren) {
  ASSERT_TRUE(
      store_
          ->Insert({MakeJob("p", 0, JobKind::kSweep), MakeJob("c1", 0, JobKind::kTrain, "p"),
                    MakeJob("c2", 0, JobKind::kTrain, "p"), MakeJob("x", 0, JobKind::kSynth)})
          .ok());
  Job done = MakeJob("c1", 0, JobKind::kTrain, "p");
  done.state = JobState::kSucceeded;
  ASSERT_TRUE(store_->Update(done).ok());

  auto all = store_->List({});
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(Ids(*all), ElementsAre("x", "c2", "c1", "p"));
  EXPECT_THAT(all->back().child_ids, ElementsAre("c1", "c2"));

  JobFilter filter;
  filter.states = {JobState::kQueued};
  filter.kind = JobKind::kTrain;
  EXPECT_THAT(Ids(*store_->List(filter)), ElementsAre("c2"));
  filter = {};
  filter.limit = 2;
  EXPECT_THAT(Ids(*store_->List(filter)), ElementsAre("x", "c2"));
  filter = {};
  filter.parent_id = "p";
  EXPECT_THAT(Ids(*store_->List(filter)), ElementsAre("c2", "c1"));
  EXPECT_THAT(Ids(*store_->Children("p")), ElementsAre("c1", "c2"));

  auto counts = store_->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[JobState::kQueued], 3);
  EXPECT_EQ((*counts)[JobState::kSucceeded], 1);
  EXPECT_EQ(*store_->CountRunnableQueued(), 2);  // c2 and x; not the sweep parent.
}

TEST_P(JobStoreTest, EverythingSurvivesReopening) {
  ASSERT_TRUE(store_->Insert({MakeJob("a"), MakeJob("b", 1)}).ok());
  ASSERT_TRUE(store_->UpdateLastCompletedEpoch("a", 7).ok());
  JobProgress progress;
  progress.epoch = 8;
  progress.loss = 0.125;
  ASSERT_TRUE(store_->UpdateProgress("a", progress).ok());
  store_.reset();
  auto store = factory_.Open();
  ASSERT_TRUE(store.ok()) << store.status();
  auto a = (*store)->Get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->last_completed_epoch, 7);
  EXPECT_EQ(a->progress.epoch, 8);
  EXPECT_DOUBLE_EQ(a->progress.loss, 0.125);
  EXPECT_EQ((*store)->List({})->size(), 2u);
}

TEST_P(JobStoreTest, DeleteRemovesOnlyTheGivenJobsAndIgnoresUnknownIds) {
  ASSERT_TRUE(
      store_
          ->Insert({MakeJob("p", 0, JobKind::kSweep), MakeJob("c1", 0, JobKind::kTrain, "p"),
                    MakeJob("x"), MakeJob("y", 0, JobKind::kAnalysis)})
          .ok());
  ASSERT_TRUE(store_->Delete({"p", "c1", "unknown", R"(quote"and\backslash)"}).ok());
  EXPECT_THAT(Ids(*store_->List({})), ElementsAre("y", "x"));
  EXPECT_EQ(store_->Get("p").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Delete({}).ok());
}

TEST_P(JobStoreTest, ListFiltersByFinishedBeforeAndKindAndExperimentChildren) {
  Job old_done = MakeJob("old", 0, JobKind::kAnalysis);
  Job new_done = MakeJob("new");
  Job open = MakeJob("open");
  ASSERT_TRUE(store_
                  ->Insert({old_done, new_done, open, MakeJob("e", 0, JobKind::kExperiment),
                            MakeJob("e1", 0, JobKind::kTrain, "e")})
                  .ok());
  old_done.state = JobState::kSucceeded;
  old_done.finished = TimePoint(std::chrono::milliseconds(1700000001000));
  new_done.state = JobState::kFailed;
  new_done.finished = TimePoint(std::chrono::milliseconds(1700000009000));
  ASSERT_TRUE(store_->Update(old_done).ok());
  ASSERT_TRUE(store_->Update(new_done).ok());
  JobFilter filter;
  filter.finished_before = TimePoint(std::chrono::milliseconds(1700000005000));
  EXPECT_THAT(Ids(*store_->List(filter)), ElementsAre("old"));
  filter.finished_before = TimePoint(std::chrono::milliseconds(1700000009000));
  EXPECT_THAT(Ids(*store_->List(filter)), ElementsAre("new", "old"));
  filter.kind = JobKind::kAnalysis;
  EXPECT_THAT(Ids(*store_->List(filter)), ElementsAre("old"));
  filter = {};
  filter.states = {JobState::kSucceeded, JobState::kFailed};
  EXPECT_THAT(Ids(*store_->List(filter)), ElementsAre("new", "old"));
  EXPECT_THAT(store_->Get("e")->child_ids, ElementsAre("e1"));
  EXPECT_TRUE(store_->Get("e1")->child_ids.empty());
  // An experiment parent is not runnable either.
  EXPECT_EQ(*store_->CountRunnableQueued(), 2);  // open and e1
}

TEST_P(JobStoreTest, UpdatesOfUnknownJobsAreNotFound) {
  EXPECT_EQ(store_->UpdateProgress("nope", {}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->UpdateLastCompletedEpoch("nope", 1).code(), absl::StatusCode::kNotFound);
  auto next = store_->NextRunnable();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  auto counts = store_->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->size(), 5u);  // every state, zero
  EXPECT_EQ((*counts)[JobState::kRunning], 0);
}

TEST_P(JobStoreTest, TextIsStoredByteForByte) {
  Job job = MakeJob("text");
  job.spec_json = R"({"b":1,  "a":"\u00e9 é 'quote' \"dq\" \\ ;--"})";
  job.reason = "line1\nline2 ünïcödé";
  ASSERT_TRUE(store_->Insert({job}).ok());
  auto got = store_->Get("text");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->spec_json, job.spec_json);
  EXPECT_EQ(got->reason, job.reason);
}

INSTANTIATE_TEST_SUITE_P(Sqlite, JobStoreTest, ::testing::Values(Backend::kSqlite));
INSTANTIATE_TEST_SUITE_P(Postgres, JobStoreTest, ::testing::Values(Backend::kPostgres));

}  // namespace
}  // namespace segserve::scheduler
