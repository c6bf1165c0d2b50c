// Recovery: a process killed with SIGKILL mid-job loses no job and no completed epoch;
// a graceful shutdown re-queues running jobs (on both job stores); a corrupt SQLite file.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scheduler/scheduler.h"
#include "server/scheduler/sqlite_job_store.h"
#include "tests/scheduler/test_util.h"

namespace segserve::scheduler {
namespace {

using testing::Backend;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ScriptedRunner;
using testing::Spec;
using testing::StoreFactory;
using testing::TempDir;

// Crash recovery on each real job store (SQLite file, PostgreSQL database).
class RecoveryTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { ASSERT_TRUE(factory_.available().ok()) << factory_.available(); }
  StoreFactory factory_{GetParam()};
};
using testing::WaitTerminal;

absl::StatusOr<std::unique_ptr<Scheduler>> Open(StoreFactory& factory,
                                                std::shared_ptr<Runner> runner,
                                                common::Clock* clock) {
  auto store = factory.Open();
  if (!store.ok()) return store.status();
  return Scheduler::Create(std::move(*store), {{JobKind::kTrain, runner}}, {}, clock, nullptr);
}

// In the child process: completes `done_epochs` epochs, tells the parent, then hangs
// until killed.
class HangingRunner : public Runner {
 public:
  HangingRunner(int done_epochs, int ready_fd) : done_epochs_(done_epochs), ready_fd_(ready_fd) {}
  absl::Status Run(const Job& job, JobContext& ctx) override {
    for (int epoch = 1; epoch <= done_epochs_; ++epoch) {
      JobProgress progress;
      progress.epoch = epoch;
      ctx.ReportProgress(progress);
      if (!ctx.MarkEpochCompleted(epoch).ok()) _exit(3);
    }
    char ok = 'R';
    if (write(ready_fd_, &ok, 1) != 1) _exit(4);
    pause();  // Until SIGKILL.
    return absl::OkStatus();
  }

 private:
  int done_epochs_;
  int ready_fd_;
};

TEST_P(RecoveryTest, KilledProcessResumesFromLastCompletedEpochAndLosesNoJob) {
  common::ManualClock clock;
  JobId running_id, queued_id;
  {
    auto store = factory_.Open();
    ASSERT_TRUE(store.ok());
    Job a;
    a.id = "job-a";
    a.spec_json = Spec("a", 5);
    Job b;
    b.id = "job-b";
    b.spec_json = Spec("b", 1);
    ASSERT_TRUE((*store)->Insert({a, b}).ok());
    running_id = a.id;
    queued_id = b.id;
  }
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipe_fds[0]);
    auto scheduler = Open(factory_, std::make_shared<HangingRunner>(2, pipe_fds[1]), &clock);
    if (!scheduler.ok()) _exit(2);
    pause();
    _exit(0);
  }
  close(pipe_fds[1]);
  char ready = 0;
  ASSERT_EQ(read(pipe_fds[0], &ready, 1), 1) << "child did not reach epoch 2";
  close(pipe_fds[0]);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus));

  {
    // What the dead process left: the job RUNNING with two epochs recorded.
    auto store = factory_.Open();
    ASSERT_TRUE(store.ok()) << store.status();
    auto row = (*store)->Get(running_id);
    ASSERT_TRUE(row.ok());
    EXPECT_EQ(row->state, JobState::kRunning);
    EXPECT_EQ(row->last_completed_epoch, 2);
  }

  auto runner = std::make_shared<ScriptedRunner>();
  auto scheduler = Open(factory_, runner, &clock);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  auto a = WaitTerminal(**scheduler, running_id);
  auto b = WaitTerminal(**scheduler, queued_id);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->state, JobState::kSucceeded);
  EXPECT_EQ(a->restarts, 1);
  EXPECT_EQ(a->last_completed_epoch, 5);
  EXPECT_EQ(b->state, JobState::kSucceeded);
  // The resumed run started after epoch 2 and did only the remaining epochs.
  EXPECT_THAT(runner->epochs_run("a"), ElementsAre(3, 4, 5));
  EXPECT_EQ(runner->started_jobs().front().last_completed_epoch, 2);
  EXPECT_THAT(runner->started(), ElementsAre("a", "b"));  // FIFO kept across the crash.
}

TEST_P(RecoveryTest, CancelRequestedBeforeACrashIsHonouredAtRestart) {
  common::ManualClock clock;
  {
    auto store = factory_.Open();
    ASSERT_TRUE(store.ok());
    Job job;
    job.id = "job-c";
    job.state = JobState::kRunning;  // As a crashed process leaves it.
    job.cancel_requested = true;
    job.spec_json = Spec("c");
    ASSERT_TRUE((*store)->Insert({job}).ok());
  }
  auto runner = std::make_shared<ScriptedRunner>();
  auto scheduler = Open(factory_, runner, &clock);
  ASSERT_TRUE(scheduler.ok());
  EXPECT_EQ((*scheduler)->Get("job-c")->state, JobState::kCancelled);
  (*scheduler)->Shutdown();
  EXPECT_TRUE(runner->started().empty());
}

TEST_P(RecoveryTest, SweepParentLeftOpenByACrashIsClosedAtRestart) {
  common::ManualClock clock;
  {
    auto store = factory_.Open();
    ASSERT_TRUE(store.ok());
    Job parent;
    parent.id = "job-p";
    parent.kind = JobKind::kSweep;
    parent.state = JobState::kRunning;
    Job child;
    child.id = "job-c";
    child.parent_id = parent.id;
    child.state = JobState::kSucceeded;
    ASSERT_TRUE((*store)->Insert({parent, child}).ok());
  }
  auto scheduler = Open(factory_, std::make_shared<ScriptedRunner>(), &clock);
  ASSERT_TRUE(scheduler.ok());
  EXPECT_EQ((*scheduler)->Get("job-p")->state, JobState::kSucceeded);
}

TEST_P(RecoveryTest, GracefulShutdownRequeuesRunningJobsWhichResumeAtNextStart) {
  common::ManualClock clock;
  auto runner = std::make_shared<ScriptedRunner>();
  JobId id;
  {
    auto scheduler = Open(factory_, runner, &clock);
    ASSERT_TRUE(scheduler.ok());
    auto job = (*scheduler)->Submit(JobKind::kTrain, Spec("a", 4, 3));
    ASSERT_TRUE(job.ok());
    id = job->id;
    runner->WaitHolding("a");
    (*scheduler)->Shutdown();
    EXPECT_EQ((*scheduler)->Submit(JobKind::kTrain, Spec("late")).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  {
    auto store = factory_.Open();
    ASSERT_TRUE(store.ok());
    Job row = *(*store)->Get(id);
    EXPECT_EQ(row.state, JobState::kQueued);
    EXPECT_EQ(row.restarts, 1);
    EXPECT_EQ(row.last_completed_epoch, 2);
  }
  auto resumed_runner = std::make_shared<ScriptedRunner>();
  resumed_runner->ReleaseAll();  // The spec holds before epoch 3 again.
  auto scheduler = Open(factory_, resumed_runner, &clock);
  ASSERT_TRUE(scheduler.ok());
  auto done = WaitTerminal(**scheduler, id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_THAT(resumed_runner->epochs_run("a"), ElementsAre(3, 4));
}

TEST(Recovery, CorruptStoreLeavesJobServicesUnavailableAndTheFileUntouched) {
  StoreFactory factory(Backend::kSqlite);
  const TempDir& dir = factory.dir();
  {
    auto scheduler = Open(factory, std::make_shared<ScriptedRunner>(), nullptr);
    ASSERT_TRUE(scheduler.ok());
    ASSERT_TRUE((*scheduler)->Submit(JobKind::kTrain, Spec("kept", 1, 1)).ok());
  }  // Closing checkpoints the WAL into jobs.db.
  {
    std::fstream file(dir.db(), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096 + 8);  // The jobs table's b-tree root.
    const std::string garbage(1000, '\x7f');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  const auto size_before = std::filesystem::file_size(dir.db());
  metrics::Metrics metrics;
  auto runner = std::make_shared<ScriptedRunner>();
  auto scheduler =
      Scheduler::OpenSqlite(dir.db(), {{JobKind::kTrain, runner}}, {}, nullptr, &metrics);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  const absl::Status& why = (*scheduler)->availability();
  EXPECT_EQ(why.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(why.message()), HasSubstr("jobs.db failed its integrity check"));
  EXPECT_THAT(std::string(why.message()), HasSubstr(dir.db()));
  EXPECT_EQ((*scheduler)->Submit(JobKind::kTrain, Spec("new")).status(), why);
  EXPECT_EQ((*scheduler)->Get("job-0").status(), why);
  EXPECT_EQ((*scheduler)->List({}).status(), why);
  EXPECT_EQ((*scheduler)->Cancel("job-0").status(), why);
  EXPECT_EQ((*scheduler)->Watch("job-0").status(), why);
  EXPECT_EQ(testing::MetricValue(metrics, "segserve_job_store_healthy"), 0);
  EXPECT_TRUE(runner->started().empty());
  scheduler->reset();
  EXPECT_EQ(std::filesystem::file_size(dir.db()), size_before);
}

TEST(Recovery, SoundStoreReportsItselfHealthy) {
  TempDir dir;
  metrics::Metrics metrics;
  auto scheduler = Scheduler::OpenSqlite(
      dir.db(), {{JobKind::kTrain, std::make_shared<ScriptedRunner>()}}, {}, nullptr, &metrics);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  EXPECT_TRUE((*scheduler)->availability().ok());
  EXPECT_EQ(testing::MetricValue(metrics, "segserve_job_store_healthy"), 1);
}

INSTANTIATE_TEST_SUITE_P(Sqlite, RecoveryTest, ::testing::Values(Backend::kSqlite));
INSTANTIATE_TEST_SUITE_P(Postgres, RecoveryTest, ::testing::Values(Backend::kPostgres));

}  // namespace
}  // namespace segserve::scheduler
