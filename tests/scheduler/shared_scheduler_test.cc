// Several schedulers on one shared job store (SchedulerOptions::shared_store), as segserve
// replicas on one PostgreSQL database, with the scripted Runner double: fan-out of a sweep
// over the replicas' workers, a paused replica whose lease expires (its late writes are
// refused and the job finishes once, on another replica), cancel and watch across replicas,
// and a serve-only replica (no slots). Real PostgreSQL; the SQLite instance runs the same
// scenarios on one file with several connections.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/postgres/connection.h"
#include "server/scheduler/scheduler.h"
#include "tests/scheduler/test_util.h"

namespace segserve::scheduler {
namespace {

using testing::Backend;
using testing::ScriptedRunner;
using testing::Spec;
using testing::StoreFactory;
using testing::WaitTerminal;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Decorates a real store (STYLE.md's seam for store failures): the first `n` epoch marks
// answer UNAVAILABLE, as during a database restart.
class FlakyEpochMarks : public JobStore {
 public:
  FlakyEpochMarks(std::unique_ptr<JobStore> inner, int n) : inner_(std::move(inner)), left_(n) {}
  using JobStore::Update;
  using JobStore::UpdateLastCompletedEpoch;
  using JobStore::UpdateProgress;
  absl::Status Insert(const std::vector<Job>& jobs) override { return inner_->Insert(jobs); }
  absl::Status Update(const Job& job, const Fence& fence) override {
    return inner_->Update(job, fence);
  }
  absl::Status UpdateProgress(const JobId& id, const JobProgress& p, int attempt) override {
    return inner_->UpdateProgress(id, p, attempt);
  }
  absl::Status UpdateLastCompletedEpoch(const JobId& id, int epoch, int attempt) override {
    if (left_.fetch_sub(1) > 0) return absl::UnavailableError("job database: connection lost");
    return inner_->UpdateLastCompletedEpoch(id, epoch, attempt);
  }
  absl::Status RequestCancel(const JobId& id) override { return inner_->RequestCancel(id); }
  absl::StatusOr<std::optional<Job>> Claim(const std::string& owner,
                                           std::chrono::milliseconds lease,
                                           TimePoint now) override {
    return inner_->Claim(owner, lease, now);
  }
  absl::StatusOr<bool> RenewLease(const JobId& id, int attempt,
                                  std::chrono::milliseconds lease) override {
    return inner_->RenewLease(id, attempt, lease);
  }
  absl::StatusOr<std::vector<Job>> RequeueExpired(TimePoint now) override {
    return inner_->RequeueExpired(now);
  }
  absl::StatusOr<Job> Get(const JobId& id) override { return inner_->Get(id); }
  absl::StatusOr<std::vector<Job>> List(const JobFilter& filter) override {
    return inner_->List(filter);
  }
  absl::StatusOr<std::optional<Job>> NextRunnable() override { return inner_->NextRunnable(); }
  absl::StatusOr<std::vector<Job>> Children(const JobId& parent_id) override {
    return inner_->Children(parent_id);
  }
  absl::StatusOr<std::map<JobState, int64_t>> CountByState() override {
    return inner_->CountByState();
  }
  absl::StatusOr<int64_t> CountRunnableQueued() override { return inner_->CountRunnableQueued(); }
  absl::Status Delete(const std::vector<JobId>& ids) override { return inner_->Delete(ids); }

 private:
  std::unique_ptr<JobStore> inner_;
  std::atomic<int> left_;
};

class SharedSchedulerTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { ASSERT_TRUE(factory_.available().ok()) << factory_.available(); }

  // A replica: its own store connection, its own metrics, the shared scripted runner.
  std::unique_ptr<Scheduler> Replica(const std::string& name, int slots,
                                     std::function<bool()> paused = nullptr,
                                     const std::string& conninfo_extra = "") {
    auto store = factory_.Open(conninfo_extra);
    EXPECT_TRUE(store.ok()) << store.status();
    SchedulerOptions options;
    options.shared_store = true;
    options.training_slots = slots;
    options.worker_id = name;
    options.lease = 300ms;
    options.poll_interval = 20ms;
    options.progress_persist_interval = 0ms;
    options.maintenance_paused_for_testing = std::move(paused);
    RunnerMap runners = {{JobKind::kTrain, runner_}};
    metrics_.push_back(std::make_unique<metrics::Metrics>());
    auto scheduler = Scheduler::Create(std::move(*store), runners, options, nullptr,
                                       metrics_.back().get());
    EXPECT_TRUE(scheduler.ok()) << scheduler.status();
    return scheduler.ok() ? std::move(*scheduler) : nullptr;
  }
  Job Stored(const JobId& id) {
    auto store = factory_.Open();
    EXPECT_TRUE(store.ok());
    return *(*store)->Get(id);
  }

  StoreFactory factory_{GetParam()};
  std::vector<std::unique_ptr<metrics::Metrics>> metrics_;
  std::shared_ptr<ScriptedRunner> runner_ = std::make_shared<ScriptedRunner>();
};

TEST_P(SharedSchedulerTest, ASweepFansOutOverEveryReplicasWorkers) {
  auto a = Replica("replica-a", 1);
  auto b = Replica("replica-b", 1);
  // Submitted on a serve-only replica: it runs nothing itself.
  auto front = Replica("front", 0);
  ASSERT_TRUE(a && b && front);
  std::vector<std::string> specs;
  for (int i = 0; i < 4; ++i) specs.push_back(Spec("c" + std::to_string(i), 2, 2));
  auto sweep = front->SubmitSweep("{}", specs);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  runner_->WaitForStarts(2);  // one per replica, each holding before epoch 2
  EXPECT_EQ(runner_->concurrent_max(), 2);
  std::set<std::string> owners;
  for (const Job& job : runner_->started_jobs()) owners.insert(job.owner);
  EXPECT_EQ(owners, (std::set<std::string>{"replica-a", "replica-b"}));
  runner_->ReleaseAll();
  auto done = WaitTerminal(*front, sweep->id);  // the front's watcher hears it by polling
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(runner_->started().size(), 4u) << "each child ran once";
  for (const JobId& child : sweep->child_ids) {
    Job stored = Stored(child);
    EXPECT_EQ(stored.state, JobState::kSucceeded);
    EXPECT_EQ(stored.attempt, 1);
    EXPECT_EQ(stored.owner, "");
  }
}

TEST_P(SharedSchedulerTest, APausedReplicaLosesItsLeaseAndItsLateWritesAreRefused) {
  std::atomic<bool> a_paused{false};
  auto a = Replica("replica-a", 1, [&] { return a_paused.load(); });
  ASSERT_TRUE(a);
  auto job = a->Submit(JobKind::kTrain, Spec("j", 3, 2));
  ASSERT_TRUE(job.ok());
  runner_->WaitHolding("j");  // epoch 1 done on replica-a, attempt 1
  a_paused = true;            // no more heartbeats from replica-a
  auto b = Replica("replica-b", 1);
  ASSERT_TRUE(b);
  runner_->WaitForStarts(2);  // replica-b re-queued the expired lease and took the job
  const Job second = runner_->started_jobs()[1];
  EXPECT_EQ(second.owner, "replica-b");
  EXPECT_EQ(second.attempt, 2);
  EXPECT_EQ(second.last_completed_epoch, 1) << "resumes after the last completed epoch";
  EXPECT_EQ(second.restarts, 1);
  // replica-a wakes up and goes on with epoch 2: its epoch mark is refused (Aborted), its
  // runner returns and its outcome is dropped; replica-b finishes the job once.
  runner_->ReleaseAll();
  auto done = WaitTerminal(*b, job->id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kSucceeded);
  a_paused = false;
  a->Shutdown();  // waits for replica-a's runner to return
  Job stored = Stored(job->id);
  EXPECT_EQ(stored.state, JobState::kSucceeded);
  EXPECT_EQ(stored.attempt, 2);
  EXPECT_EQ(stored.restarts, 1);
  EXPECT_EQ(stored.last_completed_epoch, 3);
  // Epochs 2 and 3 were completed by replica-b only: replica-a's late mark of epoch 2
  // failed, so the runner recorded it once.
  EXPECT_THAT(runner_->epochs_run("j"), ::testing::ElementsAre(1, 2, 3));
}

TEST_P(SharedSchedulerTest, CancelOnOneReplicaStopsTheJobRunningOnAnother) {
  auto worker = Replica("worker", 1);
  auto front = Replica("front", 0);
  ASSERT_TRUE(worker && front);
  auto job = front->Submit(JobKind::kTrain, Spec("k", 5, 2));
  ASSERT_TRUE(job.ok());
  runner_->WaitHolding("k");
  auto watch = front->Watch(job->id);
  ASSERT_TRUE(watch.ok());
  auto cancelling = front->Cancel(job->id);
  ASSERT_TRUE(cancelling.ok()) << cancelling.status();
  EXPECT_TRUE(cancelling->cancel_requested);
  std::optional<JobEvent> event;
  bool saw_progress_from_elsewhere = false;
  while ((event = (*watch)->Next(30s)) && !event->terminal) {
    saw_progress_from_elsewhere |= event->job.owner == "worker";
  }
  ASSERT_TRUE(event.has_value()) << "no terminal event on the front replica";
  EXPECT_EQ(event->job.state, JobState::kCancelled);
  EXPECT_TRUE(saw_progress_from_elsewhere);
  EXPECT_TRUE(runner_->saw_cancel("k"));
  EXPECT_EQ(Stored(job->id).state, JobState::kCancelled);
}

TEST_P(SharedSchedulerTest, ARestartingReplicaLeavesLiveLeasesAlone) {
  auto a = Replica("replica-a", 1);
  ASSERT_TRUE(a);
  auto job = a->Submit(JobKind::kTrain, Spec("live", 2, 2));
  ASSERT_TRUE(job.ok());
  runner_->WaitHolding("live");
  // A second replica starting (its recovery) must not re-queue replica-a's running job.
  auto b = Replica("replica-b", 1);
  ASSERT_TRUE(b);
  std::this_thread::sleep_for(700ms);  // two leases: replica-a keeps renewing
  Job stored = Stored(job->id);
  EXPECT_EQ(stored.state, JobState::kRunning);
  EXPECT_EQ(stored.owner, "replica-a");
  EXPECT_EQ(stored.attempt, 1);
  runner_->ReleaseAll();
  auto done = WaitTerminal(*a, job->id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(runner_->started().size(), 1u);
}

TEST_P(SharedSchedulerTest, ARestartedReplicaResumesItsOwnJobsWithoutWaitingForTheLease) {
  // A worker id of this host whose process is gone (a child that exited), and one of a live
  // process on this host (our parent): only the first one's job is re-queued at start.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  waitpid(child, nullptr, 0);
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof(host) - 1), 0);
  const std::string gone = std::string(host) + "-" + std::to_string(child) + "-beef";
  const std::string alive = std::string(host) + "-" + std::to_string(getppid()) + "-beef";
  EXPECT_TRUE(IsGoneLocalWorker(gone));
  EXPECT_FALSE(IsGoneLocalWorker(alive));
  EXPECT_FALSE(IsGoneLocalWorker("other-host-" + std::to_string(child) + "-beef"));
  EXPECT_TRUE(IsGoneLocalWorker(std::string(host) + "-" + std::to_string(getpid()) + "-0000"))
      << "our own pid with another suffix: an earlier incarnation";
  {
    auto store = factory_.Open();
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Insert({testing::MakeJob("a"), testing::MakeJob("b")}).ok());
    ASSERT_TRUE((*store)->Claim(gone, 60s, TimePoint(std::chrono::seconds(1700000000))).ok());
    ASSERT_TRUE((*store)->Claim(alive, 60s, TimePoint(std::chrono::seconds(1700000000))).ok());
  }
  auto replica = Replica("restarted", 1);
  ASSERT_TRUE(replica);
  auto done = WaitTerminal(*replica, "a");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kSucceeded);
  Job a = Stored("a");
  EXPECT_EQ(a.restarts, 1);
  EXPECT_EQ(a.attempt, 2);
  Job b = Stored("b");
  EXPECT_EQ(b.state, JobState::kRunning) << "a live worker's lease is left alone";
  EXPECT_EQ(b.owner, alive);
}

TEST_P(SharedSchedulerTest, ADatabaseAwayAtAnEpochEndDelaysTheJobInsteadOfFailingIt) {
  auto store = factory_.Open();
  ASSERT_TRUE(store.ok());
  SchedulerOptions options;
  options.shared_store = true;
  options.worker_id = "flaky";
  options.lease = 3000ms;
  options.poll_interval = 20ms;
  auto scheduler = Scheduler::Create(std::make_unique<FlakyEpochMarks>(std::move(*store), 3),
                                     {{JobKind::kTrain, runner_}}, options, nullptr, nullptr);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  auto job = (*scheduler)->Submit(JobKind::kTrain, Spec("f", 2));
  ASSERT_TRUE(job.ok());
  auto done = WaitTerminal(**scheduler, job->id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kSucceeded) << done->reason;
  EXPECT_EQ(Stored(job->id).last_completed_epoch, 2);
  EXPECT_EQ(Stored(job->id).attempt, 1) << "retried within the lease, not re-run";
}

// A network cut between one replica and the database (PostgreSQL only): replica-a connects
// as its own role; the cut terminates its sessions and refuses its reconnects (NOLOGIN)
// while replica-b, as another role, still reaches the database. Past the lease, replica-b
// takes the job over, and replica-a, which could not write for a whole lease, stops its run
// as lost and drops its outcome; after the cut heals the job finishes once, on replica-b,
// with every epoch run once.
TEST_P(SharedSchedulerTest, AReplicaCutOffFromTheDatabaseLosesItsJobWhichFinishesOnceElsewhere) {
  if (GetParam() != Backend::kPostgres) GTEST_SKIP() << "a network cut needs a database server";
  auto admin_store = factory_.Open();  // migrates
  ASSERT_TRUE(admin_store.ok());
  postgres::ConnectOptions admin_options;
  admin_options.conninfo = factory_.conninfo();
  auto admin = postgres::Connection::Open(admin_options);
  ASSERT_TRUE(admin.ok()) << admin.status();
  auto sql = [&](const std::string& statement) {
    auto done = (*admin)->ExecSql(statement);
    ASSERT_TRUE(done.ok()) << statement << ": " << done.status();
  };
  // Roles are per server: one name per test database, dropped at the end.
  const std::string role = "cut_" + std::to_string(::getpid()) + "_" +
                           std::to_string(reinterpret_cast<uintptr_t>(this) % 100000);
  ASSERT_NO_FATAL_FAILURE(sql("CREATE ROLE " + role + " LOGIN"));
  ASSERT_NO_FATAL_FAILURE(sql("GRANT USAGE, CREATE ON SCHEMA public TO " + role));
  ASSERT_NO_FATAL_FAILURE(sql("GRANT ALL ON ALL TABLES IN SCHEMA public TO " + role));
  ASSERT_NO_FATAL_FAILURE(sql("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO " + role));
  {
    auto a = Replica("replica-a", 1, nullptr, " user=" + role);
    ASSERT_TRUE(a);
    auto job = a->Submit(JobKind::kTrain, Spec("p", 3, 2));
    ASSERT_TRUE(job.ok()) << job.status();
    runner_->WaitHolding("p");  // epoch 1 done on replica-a, attempt 1
    // The cut.
    ASSERT_NO_FATAL_FAILURE(sql("ALTER ROLE " + role + " NOLOGIN"));
    ASSERT_NO_FATAL_FAILURE(
        sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + role +
            "'"));
    auto b = Replica("replica-b", 1);
    ASSERT_TRUE(b);
    runner_->WaitForStarts(2);  // replica-b re-queued the expired lease and took the job
    const Job second = runner_->started_jobs()[1];
    EXPECT_EQ(second.owner, "replica-b");
    EXPECT_EQ(second.attempt, 2);
    EXPECT_EQ(second.last_completed_epoch, 1);
    // Healed; replica-a's runner, held before epoch 2, is released: it was stopped as lost,
    // so it writes nothing more (had it written, the attempt fence would refuse it).
    ASSERT_NO_FATAL_FAILURE(sql("ALTER ROLE " + role + " LOGIN"));
    runner_->ReleaseAll();
    auto done = WaitTerminal(*b, job->id);
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_EQ(done->state, JobState::kSucceeded);
    a->Shutdown();
    Job stored = Stored(job->id);
    EXPECT_EQ(stored.state, JobState::kSucceeded);
    EXPECT_EQ(stored.attempt, 2);
    EXPECT_EQ(stored.last_completed_epoch, 3);
    EXPECT_THAT(runner_->epochs_run("p"), ::testing::ElementsAre(1, 2, 3));
  }
  ASSERT_NO_FATAL_FAILURE(sql("REASSIGN OWNED BY " + role + " TO segserve"));
  ASSERT_NO_FATAL_FAILURE(sql("DROP OWNED BY " + role));
  ASSERT_NO_FATAL_FAILURE(sql("DROP ROLE " + role));
}

TEST_P(SharedSchedulerTest, ZeroSlotsNeedASharedStore) {
  auto store = factory_.Open();
  ASSERT_TRUE(store.ok());
  SchedulerOptions options;
  options.training_slots = 0;
  auto refused = Scheduler::Create(std::move(*store), {{JobKind::kTrain, runner_}}, options,
                                   nullptr, nullptr);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("training_slots must be >= 1"));
}

INSTANTIATE_TEST_SUITE_P(Sqlite, SharedSchedulerTest, ::testing::Values(Backend::kSqlite));
INSTANTIATE_TEST_SUITE_P(Postgres, SharedSchedulerTest, ::testing::Values(Backend::kPostgres));

}  // namespace
}  // namespace segserve::scheduler
