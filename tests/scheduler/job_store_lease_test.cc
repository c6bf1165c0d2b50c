// The lease part of the JobStore contract (Claim, RenewLease, RequeueExpired, fenced writes,
// RequestCancel) on both backends: a real SQLite file and a real PostgreSQL database, with
// several store instances on the same data standing in for several replicas.
#include <atomic>
#include <set>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scheduler/job_store.h"
#include "tests/scheduler/test_util.h"

namespace segserve::scheduler {
namespace {

using testing::Backend;
using testing::MakeJob;
using testing::StoreFactory;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

const TimePoint kNow = TimePoint(std::chrono::milliseconds(1700000000000));

class JobStoreLeaseTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(factory_.available().ok()) << factory_.available();
    auto opened = factory_.Open();
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
  }
  Job Stored(const JobId& id) {
    auto job = store_->Get(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : Job{};
  }

  StoreFactory factory_{GetParam()};
  std::unique_ptr<JobStore> store_;
};

TEST_P(JobStoreLeaseTest, ClaimTakesTheNextRunnableJobForItsOwnerAndBumpsTheAttempt) {
  ASSERT_TRUE(store_->Insert({MakeJob("low"), MakeJob("high", 5),
                              MakeJob("parent", 9, JobKind::kSweep)})
                  .ok());
  auto first = store_->Claim("worker-1", 60s, kNow);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->id, "high");
  EXPECT_EQ((*first)->state, JobState::kRunning);
  EXPECT_EQ((*first)->attempt, 1);
  EXPECT_EQ((*first)->owner, "worker-1");
  EXPECT_EQ((*first)->started, kNow);
  Job stored = Stored("high");
  EXPECT_EQ(stored.state, JobState::kRunning);
  EXPECT_EQ(stored.attempt, 1);
  EXPECT_EQ(stored.owner, "worker-1");

  auto second = store_->Claim("worker-2", 60s, kNow + 1s);
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*second)->id, "low");
  auto none = store_->Claim("worker-1", 60s, kNow);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value()) << "the sweep parent is never claimed";
  EXPECT_EQ(*store_->CountRunnableQueued(), 0);
}

TEST_P(JobStoreLeaseTest, AnExpiredLeaseIsRequeuedAndTheOldRunsWritesAreRefused) {
  ASSERT_TRUE(store_->Insert({MakeJob("a")}).ok());
  auto claimed = store_->Claim("worker-1", 1ms, kNow);
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  ASSERT_TRUE(store_->UpdateLastCompletedEpoch("a", 2, 1).ok());
  std::this_thread::sleep_for(30ms);

  auto expired = store_->RequeueExpired(kNow + 1s);
  ASSERT_TRUE(expired.ok()) << expired.status();
  ASSERT_EQ(expired->size(), 1u);
  EXPECT_EQ((*expired)[0].state, JobState::kQueued);
  EXPECT_EQ((*expired)[0].restarts, 1);
  EXPECT_EQ((*expired)[0].owner, "");
  EXPECT_THAT((*expired)[0].reason, HasSubstr("worker-1"));
  EXPECT_THAT((*expired)[0].reason, HasSubstr("after epoch 2"));
  EXPECT_TRUE(store_->RequeueExpired(kNow + 1s)->empty()) << "re-queued once";

  // The old run (attempt 1) wakes up: every write it tries is refused and changes nothing.
  JobProgress progress;
  progress.epoch = 9;
  EXPECT_EQ(store_->UpdateProgress("a", progress, 1).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store_->UpdateLastCompletedEpoch("a", 9, 1).code(), absl::StatusCode::kAborted);
  Job late = Stored("a");
  late.state = JobState::kSucceeded;
  late.result_json = R"({"late":true})";
  absl::Status refused = store_->Update(late, Fence{1, std::nullopt});
  EXPECT_EQ(refused.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(refused.message(), HasSubstr("attempt 1"));
  EXPECT_EQ(store_->RenewLease("a", 1, 60s).status().code(), absl::StatusCode::kAborted);

  // Another worker takes it (attempt 2); the old attempt stays fenced out.
  auto retaken = store_->Claim("worker-2", 60s, kNow + 2s);
  ASSERT_TRUE(retaken.ok() && retaken->has_value());
  EXPECT_EQ((*retaken)->attempt, 2);
  EXPECT_EQ((*retaken)->last_completed_epoch, 2);
  EXPECT_EQ((*retaken)->started, kNow) << "the first start is kept";
  EXPECT_EQ(store_->UpdateLastCompletedEpoch("a", 9, 1).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store_->RenewLease("a", 1, 60s).status().code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(store_->UpdateLastCompletedEpoch("a", 3, 2).ok());
  Job stored = Stored("a");
  EXPECT_EQ(stored.state, JobState::kRunning);
  EXPECT_EQ(stored.last_completed_epoch, 3);
  EXPECT_EQ(stored.progress.epoch, 0);
  EXPECT_EQ(stored.result_json, "{}");
  EXPECT_EQ(stored.owner, "worker-2");
  EXPECT_EQ(store_->UpdateProgress("nope", progress, 1).code(), absl::StatusCode::kNotFound);
}

TEST_P(JobStoreLeaseTest, RenewingKeepsTheJobAndDeliversACancelRequest) {
  ASSERT_TRUE(store_->Insert({MakeJob("a"), MakeJob("b")}).ok());
  ASSERT_TRUE(store_->Claim("worker-1", 60s, kNow).ok());
  auto renewed = store_->RenewLease("a", 1, 60s);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_FALSE(*renewed);
  EXPECT_TRUE(store_->RequeueExpired(kNow)->empty());
  ASSERT_TRUE(store_->RequestCancel("a").ok());
  EXPECT_TRUE(*store_->RenewLease("a", 1, 60s));
  EXPECT_EQ(Stored("a").state, JobState::kRunning) << "RequestCancel writes nothing else";
  EXPECT_EQ(store_->RequestCancel("nope").code(), absl::StatusCode::kNotFound);

  // A job whose cancel was requested and whose worker died is cancelled, not re-run.
  ASSERT_TRUE(store_->Claim("worker-2", 1ms, kNow).ok());
  ASSERT_TRUE(store_->RequestCancel("b").ok());
  std::this_thread::sleep_for(30ms);
  auto expired = store_->RequeueExpired(kNow + 5s);
  ASSERT_TRUE(expired.ok());
  ASSERT_EQ(expired->size(), 1u);
  EXPECT_EQ((*expired)[0].state, JobState::kCancelled);
  EXPECT_EQ((*expired)[0].finished, kNow + 5s);
  EXPECT_EQ((*expired)[0].restarts, 0);
  EXPECT_EQ(Stored("a").state, JobState::kRunning) << "a live lease is left alone";
}

TEST_P(JobStoreLeaseTest, AStateFenceRefusesAWriteComputedFromAStaleRead) {
  ASSERT_TRUE(store_->Insert({MakeJob("a")}).ok());
  Job read = Stored("a");  // QUEUED
  ASSERT_TRUE(store_->Claim("worker-1", 60s, kNow).ok());
  read.state = JobState::kCancelled;
  EXPECT_EQ(store_->Update(read, Fence{0, JobState::kQueued}).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(Stored("a").state, JobState::kRunning);
  Job running = Stored("a");
  running.reason = "note";
  EXPECT_TRUE(store_->Update(running, Fence{1, JobState::kRunning}).ok());
  EXPECT_EQ(Stored("a").reason, "note");
}

TEST_P(JobStoreLeaseTest, ConcurrentClaimsFromSeveralReplicasTakeEveryJobExactlyOnce) {
  constexpr int kJobs = 60;
  constexpr int kReplicas = 4;
  std::vector<Job> jobs;
  for (int i = 0; i < kJobs; ++i) jobs.push_back(MakeJob("job-" + std::to_string(i), i % 3));
  ASSERT_TRUE(store_->Insert(jobs).ok());
  std::vector<std::unique_ptr<JobStore>> replicas;
  for (int r = 0; r < kReplicas; ++r) {
    auto opened = factory_.Open();
    ASSERT_TRUE(opened.ok()) << opened.status();
    replicas.push_back(std::move(*opened));
  }
  std::vector<std::vector<JobId>> claimed(kReplicas);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < kReplicas; ++r) {
    threads.emplace_back([&, r] {
      while (true) {
        auto job = replicas[r]->Claim("replica-" + std::to_string(r), 60s, kNow);
        if (!job.ok()) {
          ++errors;
          continue;
        }
        if (!job->has_value()) return;
        claimed[r].push_back((*job)->id);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  std::set<JobId> all;
  size_t total = 0;
  for (int r = 0; r < kReplicas; ++r) {
    total += claimed[r].size();
    all.insert(claimed[r].begin(), claimed[r].end());
  }
  EXPECT_EQ(total, static_cast<size_t>(kJobs)) << "no job claimed twice";
  EXPECT_EQ(all.size(), static_cast<size_t>(kJobs)) << "every job claimed";
  for (int r = 0; r < kReplicas; ++r) {
    for (const JobId& id : claimed[r]) {
      Job stored = Stored(id);
      EXPECT_EQ(stored.owner, "replica-" + std::to_string(r));
      EXPECT_EQ(stored.attempt, 1);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Sqlite, JobStoreLeaseTest, ::testing::Values(Backend::kSqlite));
INSTANTIATE_TEST_SUITE_P(Postgres, JobStoreLeaseTest, ::testing::Values(Backend::kPostgres));

}  // namespace
}  // namespace segserve::scheduler
