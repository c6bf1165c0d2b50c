// A network cut between one real segserve replica and PostgreSQL, the others keeping their
// path: the cut replica (serve and train roles) reaches the database through a TcpProxy
// (tests/testing/tcp_proxy.h) to the test PostgreSQL's Unix socket; a serve-only front and,
// once the job runs on the cut replica, a second trainer connect directly. All share one
// data directory (the shared-directory blob backend) and 3 s leases.
//  1. Partition (nothing moves, nothing closes) while the cut replica trains: its lease
//     expires and the other trainer claims the job (attempt 2). The cut heals: the cut
//     replica's write that waited in the cut reaches the database and is refused by the
//     attempt fence (it counts a lost lease and stops its run).
//  2. Partition again, then a reset (connections closed, reconnects refused), with nothing
//     running on the cut replica: it keeps answering health, and its job RPCs answer
//     UNAVAILABLE naming the job database within the query timeouts instead of hanging.
//     Healed. Meanwhile the job, resumed after its last completed epoch, finishes once on
//     the other trainer with one model version.
//  3. Without a restart the cut replica answers job RPCs again and, the other trainer
//     stopped, claims and finishes a new job; every replica exits 0 on SIGTERM.
// Named Postgres* (one ctest entry with the binary's PostgreSQL).
#include <signal.h>

#include <algorithm>
#include <future>
#include <mutex>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/lib/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "segserve/v1/models.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"
#include "tests/testing/commands.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/server_process.h"
#include "tests/testing/tcp_proxy.h"

namespace segserve {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

bool Ended(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_FAILED ||
         job.state() == v1::JOB_STATE_CANCELLED;
}

// A replica and typed stubs on it.
struct Replica {
  std::unique_ptr<testing::ServerProcess> process;
  std::unique_ptr<client::Client> client;
  std::unique_ptr<v1::Training::Stub> training;
  std::unique_ptr<v1::Models::Stub> models;
};

class PostgresPartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto postgres = testing::SharedPostgresServer();
    ASSERT_TRUE(postgres.ok()) << postgres.status();
    auto database = (*postgres)->CreateDatabase();
    ASSERT_TRUE(database.ok()) << database.status();
    conninfo_ = (*postgres)->ConnInfo(*database);
    auto proxy = testing::TcpProxy::Start((*postgres)->socket_dir() + "/.s.PGSQL.5432");
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxy_ = std::move(*proxy);
    proxied_conninfo_ =
        absl::StrCat("host=127.0.0.1 port=", proxy_->port(), " user=segserve dbname=", *database);
  }

  void Start(Replica& replica, const std::string& name, std::vector<std::string> flags,
             bool through_proxy) {
    flags.push_back("--database=" + (through_proxy ? proxied_conninfo_ : conninfo_));
    flags.push_back("--drain_seconds=1");
    flags.push_back("--port_file=" + dir_.path() + "/ports-" + name + ".json");
    auto process = testing::ServerProcess::Start(testing::SegserveBinary(), dir_.path(), flags);
    ASSERT_TRUE(process.ok()) << process.status();
    replica.process = std::move(*process);
    client::ClientOptions options;
    options.target = replica.process->grpc_target();
    options.timeout = seconds(60);
    auto created = client::Client::Create(options);
    ASSERT_TRUE(created.ok()) << created.status();
    replica.client = std::move(*created);
    replica.training = v1::Training::NewStub(replica.client->channel());
    replica.models = v1::Models::NewStub(replica.client->channel());
  }
  static std::vector<std::string> TrainerFlags(const std::string& roles) {
    return {"--roles=" + roles, "--job_lease_seconds=3", "--training_slots=1"};
  }

  std::pair<int, std::string> Segctl(const std::string& args) {
    testing::CommandResult r = testing::RunCommand(testing::SegctlBinary() + " --server " +
                                                   front_.process->grpc_target() + " " + args);
    return {r.exit_code, r.output};
  }

  grpc::Status GetJob(Replica& replica, const std::string& id, v1::Job* job,
                      milliseconds deadline = milliseconds(60000)) {
    v1::JobRef ref;
    ref.set_job_id(id);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + deadline);
    return replica.training->GetJob(&context, ref, job);
  }
  v1::Job Get(const std::string& id) {
    v1::Job job;
    grpc::Status status = GetJob(front_, id, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return job;
  }

  std::string Submit(const std::string& model, int epochs) {
    auto [code, out] = Segctl(absl::StrCat(
        "submit-train --dataset part --encoder resnet18 --prune-level 1 --epochs ", epochs,
        " --batch-size 4 --max-steps-per-epoch 1 --crop-size 64 --model-name ", model));
    EXPECT_EQ(code, 0) << out;
    std::smatch match;
    EXPECT_TRUE(std::regex_search(out, match, std::regex("submitted \\S+ (job-[0-9a-f]+)"))) << out;
    return match.size() > 1 ? std::string(match[1]) : std::string();
  }

  // Polls the job on the front until `done` holds for it (or a minute passes).
  v1::Job WaitUntil(const std::string& id, const std::function<bool(const v1::Job&)>& done) {
    const auto give_up = Clock::now() + seconds(60);
    v1::Job job = Get(id);
    while (!done(job) && Clock::now() < give_up) {
      std::this_thread::sleep_for(milliseconds(10));
      job = Get(id);
    }
    return job;
  }

  bool RunsOn(const v1::Job& job, const Replica& replica) {
    return job.worker().find(absl::StrCat("-", replica.process->pid(), "-")) != std::string::npos;
  }

  int VersionsOf(const std::string& name) {
    v1::ListModelsResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + seconds(30));
    grpc::Status status = front_.models->List(&context, v1::ListModelsRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    int versions = 0;
    for (const auto& model : response.models()) versions += model.name() == name;
    return versions;
  }

  grpc::Status ListJobs(Replica& replica, milliseconds deadline) {
    v1::ListJobsRequest request;
    request.set_page_size(10);
    v1::ListJobsResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + deadline);
    return replica.training->ListJobs(&context, request, &response);
  }

  // While the database is out of the cut replica's reach: health answers SERVING at once
  // and a job RPC that reads the job database answers UNAVAILABLE naming it within `bound`.
  void ExpectCutReplicaAnswers(const std::string& cut_kind, milliseconds bound) {
    SCOPED_TRACE(cut_kind);
    const auto start = Clock::now();
    auto health = cut_.client->Health();
    ASSERT_TRUE(health.ok()) << health.status();
    EXPECT_EQ(*health, client::ServingStatus::kServing);
    EXPECT_LT(Clock::now() - start, seconds(2)) << "health waited on the database";
    const auto asked = Clock::now();
    grpc::Status status = ListJobs(cut_, bound + seconds(20));
    const double took = Seconds(Clock::now() - asked);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("job database"));
    EXPECT_LT(took, Seconds(bound)) << status.error_message();
    std::printf("[partition] %s: ListJobs on the cut replica answered %d after %.1f s\n",
                cut_kind.c_str(), static_cast<int>(status.error_code()), took);
  }

  std::string conninfo_;
  std::string proxied_conninfo_;
  std::unique_ptr<testing::TcpProxy> proxy_;
  testing::TempDir dir_;
  Replica front_, cut_, other_;
};

TEST_F(PostgresPartitionTest, ACutTrainerIsFencedTheJobFinishesOnceElsewhereAndTheReplicaRecovers) {
  const auto test_start = Clock::now();
  ASSERT_NO_FATAL_FAILURE(
      Start(front_, "front", {"--roles=serve", "--registry_sync_seconds=1"}, false));
  ASSERT_NO_FATAL_FAILURE(Start(cut_, "cut", TrainerFlags("serve,train"), true));
  auto [gen_code, gen_out] =
      Segctl("datasets generate --name part --n 8 --size 64 --seed 3 --wait");
  ASSERT_EQ(gen_code, 0) << gen_out;

  // 1. The job starts on the cut replica (the only trainer); the second trainer comes up
  // while it runs, and the cut falls once an epoch is recorded.
  const std::string id = Submit("part-a", 4);
  ASSERT_FALSE(id.empty());
  v1::Job running = WaitUntil(id, [&](const v1::Job& j) { return RunsOn(j, cut_); });
  ASSERT_TRUE(RunsOn(running, cut_)) << running.worker();
  ASSERT_NO_FATAL_FAILURE(Start(other_, "other", TrainerFlags("train"), false));
  running =
      WaitUntil(id, [](const v1::Job& j) { return j.last_completed_epoch() >= 1 || Ended(j); });
  ASSERT_EQ(running.state(), v1::JOB_STATE_RUNNING) << "the job ended before the cut";
  ASSERT_TRUE(RunsOn(running, cut_));
  ASSERT_EQ(running.attempt(), 1);

  // The front streams the job's events: the lowest epoch attempt 2 reported itself (its
  // first event shows the progress attempt 1 left in the row; skipped until it changes).
  std::mutex events_mu;
  int lowest_epoch_of_attempt_2 = 0;
  auto watched = std::async(std::launch::async, [&] {
    bool seen_attempt_2 = false, own_progress = false;
    std::pair<int, int64_t> inherited;
    return testing::WatchUntilTerminal(
        *front_.training, id, seconds(300), [&](const v1::JobEvent& event) {
          const v1::Job& j = event.job();
          if (j.attempt() != 2 || j.state() != v1::JOB_STATE_RUNNING) return;
          const std::pair<int, int64_t> progress(j.progress().epoch(), j.progress().step());
          if (!seen_attempt_2) {
            seen_attempt_2 = true;
            inherited = progress;
            return;
          }
          own_progress = own_progress || progress != inherited;
          if (!own_progress || progress.first < 1) return;
          std::lock_guard<std::mutex> lock(events_mu);
          if (lowest_epoch_of_attempt_2 == 0 || progress.first < lowest_epoch_of_attempt_2) {
            lowest_epoch_of_attempt_2 = progress.first;
          }
        });
  });

  const int recorded_before_cut = Get(id).last_completed_epoch();
  const auto cut_at = Clock::now();
  proxy_->Partition();
  v1::Job moved = WaitUntil(id, [](const v1::Job& j) {
    return (j.attempt() >= 2 && j.state() == v1::JOB_STATE_RUNNING) || Ended(j);
  });
  const double moved_after = Seconds(Clock::now() - cut_at);
  ASSERT_EQ(moved.attempt(), 2) << "the job did not move: " << moved.ShortDebugString();
  ASSERT_EQ(moved.state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(RunsOn(moved, other_)) << moved.worker();
  EXPECT_GE(moved.last_completed_epoch(), recorded_before_cut);
  proxy_->Heal();
  std::printf(
      "[partition] the job moved to the other trainer %.1f s after the cut "
      "(3 s lease)\n",
      moved_after);

  // The cut replica's write that waited in the cut reaches the database and is refused by
  // the attempt fence: the replica counts its lease lost and stops the run.
  double lost = 0;
  for (int i = 0; i < 600 && lost < 1; ++i) {
    lost = cut_.process->Metric("segserve_job_leases_lost_total");
    if (lost < 1) std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(lost, 1) << "the cut replica never learnt it lost the job";

  // 2. Cut again (the job trains on the other trainer meanwhile; nothing runs on the cut
  // replica): it keeps answering, and its job RPCs say UNAVAILABLE instead of hanging.
  proxy_->Partition();
  ASSERT_NO_FATAL_FAILURE(ExpectCutReplicaAnswers("partition", milliseconds(25000)));
  proxy_->Reset();
  ASSERT_NO_FATAL_FAILURE(ExpectCutReplicaAnswers("reset", milliseconds(5000)));
  EXPECT_EQ(cut_.process->Metric("segserve_database_up{database=\"job database\"}"), 0);
  proxy_->Heal();
  const auto healed_at = Clock::now();
  grpc::Status status;
  do {
    status = ListJobs(cut_, milliseconds(20000));
    if (!status.ok()) std::this_thread::sleep_for(milliseconds(50));
  } while (!status.ok() && Clock::now() - healed_at < seconds(30));
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::printf("[partition] the cut replica answered ListJobs %.1f s after the heal\n",
              Seconds(Clock::now() - healed_at));

  // The job finished once, on the other trainer, after the last recorded epoch.
  v1::Job done = watched.get();
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  done = Get(id);
  EXPECT_EQ(done.attempt(), 2);
  EXPECT_EQ(done.restarts(), 1);
  EXPECT_EQ(done.progress().epoch(), 4);
  {
    std::lock_guard<std::mutex> lock(events_mu);
    EXPECT_GT(lowest_epoch_of_attempt_2, moved.last_completed_epoch())
        << "attempt 2 did not resume after the last completed epoch (0: none seen)";
  }
  int versions = 0;
  for (int i = 0; i < 100 && versions == 0; ++i) {
    versions = VersionsOf("part-a");
    if (versions == 0) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(versions, 1);
  v1::Job after = Get(id);
  EXPECT_EQ(after.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(after.attempt(), 2);
  EXPECT_EQ(after.model_version(), done.model_version());

  // 3. The same process, never restarted, answers job RPCs and, alone to train, claims a
  // new job.
  v1::Job job;
  status = GetJob(cut_, id, &job, milliseconds(20000));
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(other_.process->Stop(SIGTERM, milliseconds(30000)).value_or(-1), 0);
  const std::string next = Submit("part-b", 1);
  ASSERT_FALSE(next.empty());
  bool ran_on_cut = false;
  v1::Job next_done = testing::WatchUntilTerminal(
      *front_.training, next, seconds(300),
      [&](const v1::JobEvent& event) { ran_on_cut = ran_on_cut || RunsOn(event.job(), cut_); });
  ASSERT_EQ(next_done.state(), v1::JOB_STATE_SUCCEEDED) << next_done.reason();
  EXPECT_TRUE(ran_on_cut);
  EXPECT_EQ(Get(next).attempt(), 1);
  versions = 0;
  for (int i = 0; i < 100 && versions == 0; ++i) {
    versions = VersionsOf("part-b");
    if (versions == 0) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(versions, 1);
  EXPECT_EQ(VersionsOf("part-a"), 1) << "a late write of the fenced run registered a version";

  EXPECT_EQ(cut_.process->Stop(SIGTERM, milliseconds(30000)).value_or(-1), 0)
      << "the cut replica did not exit cleanly";
  EXPECT_EQ(front_.process->Stop(SIGTERM, milliseconds(30000)).value_or(-1), 0);
  std::printf("[partition] whole test %.1f s\n", Seconds(Clock::now() - test_start));
}

}  // namespace
}  // namespace segserve
