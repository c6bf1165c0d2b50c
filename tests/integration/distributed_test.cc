// Three real segserve replicas on one PostgreSQL database and one shared data directory
// (the shared-directory blob backend): a serve-only front (`--roles=serve`) and two
// trainers (`--roles=train`, 3 s leases), started at once (they migrate the schema once,
// under the advisory lock). Everything goes through the front with segctl and gRPC:
//  - a data set generation and a training job run on the trainers, not on the front;
//  - kill -9 of the trainer running the job mid-epoch: the other trainer re-claims it after
//    the lease, resumes after the last completed epoch and finishes; exactly one model
//    version is registered; the front loads it by itself (registry follower) and serves it;
//  - SIGSTOP of the trainer running a second job past its lease, then SIGCONT: the job
//    finishes once on another trainer; the woken trainer counts a lost lease, its late
//    writes change nothing (attempt, state, one more version only);
//  - PostgreSQL stopped: Segment and health still answer, job RPCs say UNAVAILABLE naming
//    the job database, segserve_database_up is 0; restarted: all recovers by itself.
// Named Postgres* (one ctest entry with the binary's PostgreSQL).
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <regex>
#include <thread>

#include "client/lib/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "segserve/v1/models.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"
#include "tests/testing/commands.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

class PostgresDistributedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto conninfo = testing::NewSharedDatabase();
    ASSERT_TRUE(conninfo.ok()) << conninfo.status();
    conninfo_ = *conninfo;
  }

  absl::StatusOr<std::unique_ptr<testing::ServerProcess>> StartReplica(
      const std::string& name, std::vector<std::string> flags) {
    flags.push_back("--database=" + conninfo_);
    flags.push_back("--drain_seconds=1");
    flags.push_back("--port_file=" + dir_.path() + "/ports-" + name + ".json");
    return testing::ServerProcess::Start(testing::SegserveBinary(), dir_.path(), flags);
  }
  std::vector<std::string> TrainerFlags() {
    return {"--roles=train", "--job_lease_seconds=3", "--training_slots=1"};
  }

  void ConnectFront() {
    client::ClientOptions options;
    options.target = front_->grpc_target();
    options.timeout = seconds(60);
    client_ = std::move(*client::Client::Create(options));
    training_ = v1::Training::NewStub(client_->channel());
    models_ = v1::Models::NewStub(client_->channel());
  }

  std::pair<int, std::string> Segctl(const std::string& args) {
    testing::CommandResult r = testing::RunCommand(testing::SegctlBinary() + " --server " +
                                                   front_->grpc_target() + " " + args);
    return {r.exit_code, r.output};
  }

  v1::Job Get(const std::string& id) {
    v1::JobRef ref;
    ref.set_job_id(id);
    v1::Job job;
    auto context = client_->NewContext();
    grpc::Status status = training_->GetJob(context.get(), ref, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return job;
  }

  std::string SubmitTiny(const std::string& model_name) {
    auto [code, out] = Segctl(
        "submit-train --dataset dist --encoder resnet18 --prune-level 1 --epochs 3 "
        "--batch-size 4 --max-steps-per-epoch 1 --crop-size 64 --model-name " + model_name);
    EXPECT_EQ(code, 0) << out;
    std::smatch match;
    EXPECT_TRUE(std::regex_search(out, match, std::regex("submitted \\S+ (job-[0-9a-f]+)")))
        << out;
    return match.size() > 1 ? std::string(match[1]) : std::string();
  }

  // Waits until the job runs its second epoch (the first is durable) and returns it.
  v1::Job WaitInEpoch2(const std::string& id) {
    const auto deadline = std::chrono::steady_clock::now() + seconds(600);
    v1::Job seen;
    while (std::chrono::steady_clock::now() < deadline) {
      seen = Get(id);
      if ((seen.progress().epoch() >= 2 && !seen.worker().empty()) ||
          seen.state() == v1::JOB_STATE_SUCCEEDED || seen.state() == v1::JOB_STATE_FAILED) {
        break;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    return seen;
  }

  // The trainer whose worker id ("<host>-<pid>-<hex>") names its pid.
  testing::ServerProcess* WorkerProcess(const std::string& worker) {
    for (auto& trainer : trainers_) {
      if (trainer && worker.find("-" + std::to_string(trainer->pid()) + "-") != std::string::npos) {
        return trainer.get();
      }
    }
    return nullptr;
  }

  int VersionsOf(const std::string& name) {
    v1::ListModelsRequest request;
    v1::ListModelsResponse response;
    auto context = client_->NewContext();
    grpc::Status status = models_->List(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    int versions = 0;
    for (const auto& model : response.models()) versions += model.name() == name;
    return versions;
  }

  std::string conninfo_;
  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> front_;
  std::vector<std::unique_ptr<testing::ServerProcess>> trainers_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<v1::Training::Stub> training_;
  std::unique_ptr<v1::Models::Stub> models_;
};

TEST_F(PostgresDistributedTest, JobsSurviveAKilledAndAPausedTrainerAndTheFrontServesTheModel) {
  // Three replicas start at once on an empty database: one migrates, all come up.
  {
    absl::StatusOr<std::unique_ptr<testing::ServerProcess>> started[3];
    std::vector<std::thread> starting;
    starting.emplace_back([&] {
      started[0] = StartReplica("front", {"--roles=serve", "--registry_sync_seconds=1"});
    });
    starting.emplace_back([&] { started[1] = StartReplica("trainer-a", TrainerFlags()); });
    starting.emplace_back([&] { started[2] = StartReplica("trainer-b", TrainerFlags()); });
    for (std::thread& t : starting) t.join();
    for (auto& s : started) ASSERT_TRUE(s.ok()) << s.status();
    front_ = std::move(*started[0]);
    trainers_.push_back(std::move(*started[1]));
    trainers_.push_back(std::move(*started[2]));
  }
  ConnectFront();

  // Generation runs on a trainer (the front has no workers) and lands in the shared dir.
  auto [gen_code, gen_out] =
      Segctl("datasets generate --name dist --n 8 --size 64 --seed 3 --wait");
  ASSERT_EQ(gen_code, 0) << gen_out;

  // 1. kill -9 of the worker mid-epoch.
  const std::string first = SubmitTiny("dist-a");
  ASSERT_FALSE(first.empty());
  v1::Job running = WaitInEpoch2(first);
  ASSERT_EQ(running.state(), v1::JOB_STATE_RUNNING) << "the job ended before the kill";
  EXPECT_EQ(running.attempt(), 1);
  testing::ServerProcess* victim = WorkerProcess(running.worker());
  ASSERT_NE(victim, nullptr) << "no trainer is " << running.worker();
  EXPECT_FALSE(victim->Stop(SIGKILL, milliseconds(10000)).ok());
  v1::Job done = testing::WatchUntilTerminal(*training_, first, seconds(600));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  done = Get(first);
  EXPECT_EQ(done.attempt(), 2);
  EXPECT_EQ(done.restarts(), 1);
  EXPECT_EQ(done.progress().epoch(), 3);
  EXPECT_TRUE(done.worker().empty());
  EXPECT_EQ(done.model_name(), "dist-a");

  // The front follows the registry: the new model is loaded and served without a restart.
  // (The follower sees a version within a second; loading it takes seconds under ASan.)
  const auto wait_loaded = [&](const std::string& model) {
    const auto deadline = std::chrono::steady_clock::now() + seconds(60);
    std::string listing;
    while (std::chrono::steady_clock::now() < deadline) {
      listing = Segctl("models list").second;
      if (std::regex_search(listing, std::regex(model + "\\s+1\\s.*LOADED"))) break;
      std::this_thread::sleep_for(milliseconds(200));
    }
    EXPECT_THAT(listing, HasSubstr("LOADED")) << listing;
  };
  wait_loaded("dist-a");
  // (The front's model list is its view of the shared directory, refreshed every second.)
  EXPECT_EQ(VersionsOf("dist-a"), 1) << "exactly one version registered";
  const std::string image = testing::FirstImageOf(dir_.path() + "/datasets/dist");
  ASSERT_FALSE(image.empty());
  auto [seg_code, seg_out] =
      Segctl("segment --model dist-a --out " + dir_.path() + "/masks " + image);
  EXPECT_EQ(seg_code, 0) << seg_out;

  // 2. SIGSTOP of the worker past its lease, then SIGCONT. A fresh trainer replaces the
  // killed one, so two trainers are up again.
  for (auto& trainer : trainers_) {
    if (trainer.get() == victim) trainer.reset();
  }
  auto replacement = StartReplica("trainer-c", TrainerFlags());
  ASSERT_TRUE(replacement.ok()) << replacement.status();
  trainers_.push_back(std::move(*replacement));
  const std::string second = SubmitTiny("dist-b");
  ASSERT_FALSE(second.empty());
  running = WaitInEpoch2(second);
  ASSERT_EQ(running.state(), v1::JOB_STATE_RUNNING) << "the job ended before the pause";
  testing::ServerProcess* paused = WorkerProcess(running.worker());
  ASSERT_NE(paused, nullptr) << "no trainer is " << running.worker();
  ASSERT_EQ(kill(paused->pid(), SIGSTOP), 0);
  done = testing::WatchUntilTerminal(*training_, second, seconds(600));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  ASSERT_EQ(kill(paused->pid(), SIGCONT), 0);
  // The woken trainer finds its lease gone (heartbeat or its next fenced write).
  double lost = 0;
  for (int i = 0; i < 300 && lost < 1; ++i) {
    lost = paused->Metric("segserve_job_leases_lost_total");
    if (lost < 1) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(lost, 1);
  std::this_thread::sleep_for(seconds(2));  // room for any late write it might still make
  v1::Job after = Get(second);
  EXPECT_EQ(after.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(after.attempt(), 2);
  EXPECT_EQ(after.restarts(), 1);
  EXPECT_EQ(after.model_version(), done.model_version());
  EXPECT_EQ(VersionsOf("dist-b"), 1) << "the paused run registered nothing";
  // Both expiries were found by the live replicas (the front polls as well).
  double expired = front_->Metric("segserve_job_leases_expired_total");
  for (auto& trainer : trainers_) {
    if (trainer) expired += trainer->Metric("segserve_job_leases_expired_total");
  }
  EXPECT_EQ(expired, 2);
  wait_loaded("dist-b");  // before the outage below: serving it is what that step checks

  // 3. PostgreSQL goes away: the front keeps serving Segment and stays SERVING, job RPCs
  // answer UNAVAILABLE naming the job database, segserve_database_up drops to 0; when the
  // database returns everything recovers without a restart, trainers included.
  auto postgres = testing::SharedPostgresServer();
  ASSERT_TRUE(postgres.ok());
  ASSERT_TRUE((*postgres)->StopServer().ok());
  std::tie(seg_code, seg_out) =
      Segctl("segment --model dist-b --out " + dir_.path() + "/masks-outage " + image);
  EXPECT_EQ(seg_code, 0) << seg_out;
  auto [health_code, health_out] = Segctl("health");
  EXPECT_EQ(health_code, 0) << health_out;
  EXPECT_THAT(health_out, HasSubstr("SERVING"));
  auto [list_code, list_out] = Segctl("jobs list");
  EXPECT_NE(list_code, 0) << list_out;
  EXPECT_THAT(list_out, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(list_out, HasSubstr("job database"));
  EXPECT_EQ(front_->Metric("segserve_database_up{database=\"job database\"}"), 0);
  ASSERT_TRUE((*postgres)->StartServer().ok());
  for (int i = 0; i < 300; ++i) {
    std::tie(list_code, list_out) = Segctl("jobs list");
    if (list_code == 0) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(list_code, 0) << list_out;
  EXPECT_EQ(front_->Metric("segserve_database_up{database=\"job database\"}"), 1);
  std::tie(gen_code, gen_out) =
      Segctl("datasets generate --name after-outage --n 8 --size 64 --seed 4 --wait");
  EXPECT_EQ(gen_code, 0) << gen_out;

  for (auto& trainer : trainers_) {
    if (trainer) EXPECT_EQ(trainer->Stop(SIGTERM, milliseconds(30000)).value_or(-1), 0);
  }
  EXPECT_EQ(front_->Stop(SIGTERM, milliseconds(30000)).value_or(-1), 0);
}

// The kill -9 soak of issue 13: SEGSERVE_KILL_TRIALS trials (unset: skipped; CI runs the one
// kill of the test above; docs/RELIABILITY.md records a 20-trial run). Each trial submits a
// 3-epoch job on the front, kills its trainer 0-1.5 s after it reported epoch 2, starts a
// replacement trainer, and checks the job SUCCEEDS on another trainer (attempt 2, restarts 1,
// all 3 epochs) with exactly one model version. (That a resumed run starts after the last
// completed epoch is asserted by the single-box kill tests.)
TEST_F(PostgresDistributedTest, KillTrialsEveryJobCompletesOnceWithOneVersion) {
  const char* trials_env = std::getenv("SEGSERVE_KILL_TRIALS");
  if (trials_env == nullptr) GTEST_SKIP() << "set SEGSERVE_KILL_TRIALS=N to run N kill trials";
  const int trials = std::atoi(trials_env);
  auto front = StartReplica("front", {"--roles=serve", "--registry_sync_seconds=1"});
  ASSERT_TRUE(front.ok()) << front.status();
  front_ = std::move(*front);
  for (const char* name : {"trainer-0", "trainer-1"}) {
    auto trainer = StartReplica(name, TrainerFlags());
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    trainers_.push_back(std::move(*trainer));
  }
  ConnectFront();
  auto [gen_code, gen_out] = Segctl("datasets generate --name dist --n 8 --size 64 --seed 3 --wait");
  ASSERT_EQ(gen_code, 0) << gen_out;
  std::mt19937 random(20261201);
  int completed = 0;
  for (int trial = 0; trial < trials; ++trial) {
    const std::string model = "trial-" + std::to_string(trial);
    const std::string id = SubmitTiny(model);
    ASSERT_FALSE(id.empty());
    v1::Job running = WaitInEpoch2(id);
    ASSERT_EQ(running.state(), v1::JOB_STATE_RUNNING) << "trial " << trial;
    std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(0, 1500)(random)));
    running = Get(id);
    if (running.state() != v1::JOB_STATE_RUNNING || running.worker().empty()) {
      --trial;  // finished before the kill: not a trial
      continue;
    }
    const int killed_in_epoch = running.progress().epoch();
    const int completed_before_kill = running.last_completed_epoch();
    testing::ServerProcess* victim = WorkerProcess(running.worker());
    ASSERT_NE(victim, nullptr);
    EXPECT_FALSE(victim->Stop(SIGKILL, milliseconds(10000)).ok());
    for (auto& trainer : trainers_) {
      if (trainer.get() == victim) trainer.reset();
    }
    auto replacement = StartReplica("trainer-r" + std::to_string(trial), TrainerFlags());
    ASSERT_TRUE(replacement.ok()) << replacement.status();
    trainers_.push_back(std::move(*replacement));
    v1::Job done = testing::WatchUntilTerminal(*training_, id, seconds(600));
    ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << "trial " << trial << ": " << done.reason();
    done = Get(id);
    EXPECT_EQ(done.attempt(), 2) << "trial " << trial;
    EXPECT_EQ(done.restarts(), 1) << "trial " << trial;
    EXPECT_EQ(done.progress().epoch(), 3) << "trial " << trial;
    // The front's view of the shared directory catches up within its refresh interval.
    int versions = 0;
    for (int i = 0; i < 100 && versions == 0; ++i) {
      versions = VersionsOf(model);
      if (versions == 0) std::this_thread::sleep_for(milliseconds(100));
    }
    EXPECT_EQ(versions, 1) << "trial " << trial;
    ++completed;
    std::cout << "trial " << trial << ": killed with " << completed_before_kill
              << " epoch(s) completed (last progress report: epoch " << killed_in_epoch
              << "), attempt " << done.attempt() << ", restarts " << done.restarts()
              << ", versions " << versions << std::endl;
  }
  EXPECT_EQ(completed, trials);
}

}  // namespace
}  // namespace segserve
