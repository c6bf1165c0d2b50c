// The real segserve with --database pointing at this binary's private PostgreSQL
// (tests/testing/postgres_server.h): a training job submitted with segctl survives kill -9
// of the server and finishes after the restart (no jobs.db in the data dir: the jobs live in
// PostgreSQL); models and data sets one replica makes are listed by another with its own
// disk; a wrong or unreachable database, or a password in the URL, stops the start
// with the reason and a non-zero exit, without hanging. Tests are named Postgres* so the
// binary runs as one ctest entry with one PostgreSQL.
#include <signal.h>

#include <filesystem>
#include <regex>
#include <thread>

#include "client/lib/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "segserve/v1/datasets.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"
#include "tests/testing/commands.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

class PostgresServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto conninfo = testing::NewSharedDatabase();
    ASSERT_TRUE(conninfo.ok()) << conninfo.status();
    conninfo_ = *conninfo;
  }

  void StartServer(std::vector<std::string> flags = {}) {
    flags.insert(flags.end(),
                 {"--database=" + conninfo_, "--bootstrap=false", "--drain_seconds=1"});
    auto server = testing::ServerProcess::Start(testing::SegserveBinary(), dir_.path(), flags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ClientOptions options;
    options.target = server_->grpc_target();
    options.timeout = seconds(60);
    client_ = std::move(*client::Client::Create(options));
    training_ = v1::Training::NewStub(client_->channel());
    datasets_ = v1::Datasets::NewStub(client_->channel());
  }

  std::pair<int, std::string> Segctl(const std::string& args) {
    return SegctlAt(server_->grpc_target(), args);
  }
  std::pair<int, std::string> SegctlAt(const std::string& target, const std::string& args) {
    testing::CommandResult r =
        testing::RunCommand(testing::SegctlBinary() + " --server " + target + " " + args);
    return {r.exit_code, r.output};
  }
  // Large objects that are not data-set files (those are counted by the data-set tests).
  int64_t LargeObjects() {
    postgres::ConnectOptions options;
    options.conninfo = conninfo_;
    auto admin = postgres::Connection::Open(options);
    EXPECT_TRUE(admin.ok()) << admin.status();
    if (!admin.ok()) return -1;
    auto count = (*admin)->ExecSql(
        "SELECT count(*) FROM pg_largeobject_metadata WHERE oid NOT IN "
        "(SELECT blob_oid FROM dataset_files)");
    EXPECT_TRUE(count.ok()) << count.status();
    return count.ok() ? count->Int(0, 0) : -1;
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

  // Runs segserve with `flags` to its exit; returns {exit code, output}.
  std::pair<int, std::string> RunToExit(const std::string& flags) {
    testing::CommandResult r = testing::RunCommand(
        "timeout 60 " + testing::SegserveBinary() + " --data_dir=" + dir_.path() +
        " --auth_disabled --bootstrap=false --listen=127.0.0.1:0 "
        "--metrics_listen=127.0.0.1:0 " +
        flags);
    return {r.exit_code, r.output};
  }

  std::string conninfo_;
  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<v1::Training::Stub> training_;
  std::unique_ptr<v1::Datasets::Stub> datasets_;
};

TEST_F(PostgresServerTest, JobSubmittedWithSegctlSurvivesKill9AndFinishesAfterRestart) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto [gen_code, gen_out] =
      Segctl("datasets generate --name pgdata --n 8 --size 64 --seed 3 --wait");
  ASSERT_EQ(gen_code, 0) << gen_out;

  auto [code, out] = Segctl(
      "submit-train --dataset pgdata --encoder resnet18 --prune-level 1 --epochs 3 "
      "--batch-size 4 --max-steps-per-epoch 1 --crop-size 64");
  ASSERT_EQ(code, 0) << out;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(out, match, std::regex("submitted \\S+ (job-[0-9a-f]+)"))) << out;
  const std::string id = match[1];

  // Kill in epoch 2 (epoch 1 is complete and durable) and before the job ends.
  const auto deadline = std::chrono::steady_clock::now() + seconds(600);
  v1::Job seen;
  while (std::chrono::steady_clock::now() < deadline) {
    seen = Get(id);
    if (seen.progress().epoch() >= 2 || seen.state() == v1::JOB_STATE_SUCCEEDED) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_EQ(seen.state(), v1::JOB_STATE_RUNNING) << "the job ended before the kill";
  auto killed = server_->Stop(SIGKILL, milliseconds(10000));
  EXPECT_FALSE(killed.ok());  // killed by the signal, no exit code
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/jobs.db")) << "the job store is SQLite";

  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::Job done = testing::WatchUntilTerminal(*training_, id, seconds(600));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  done = Get(id);
  EXPECT_EQ(done.restarts(), 1);
  EXPECT_EQ(done.progress().epoch(), 3);
  auto [get_code, get_out] = Segctl("jobs get " + id);
  EXPECT_EQ(get_code, 0) << get_out;
  EXPECT_THAT(get_out, HasSubstr("SUCCEEDED"));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/jobs.db"));
  EXPECT_EQ(server_->Stop(SIGTERM, milliseconds(30000)).value_or(-1), 0);
}

// The registry in PostgreSQL with checkpoints in large objects: a model trained on one
// replica is served by another that shares nothing with it but the database (its own data
// dir, no shared volume), and deleting it leaves no large object behind.
TEST_F(PostgresServerTest, ALargeObjectModelTrainedOnOneReplicaServesFromAnotherWithItsOwnDisk) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--blob_store=large_object"}));
  auto [gen_code, gen_out] =
      Segctl("datasets generate --name pgdata --n 8 --size 64 --seed 3 --wait");
  ASSERT_EQ(gen_code, 0) << gen_out;
  auto [code, out] = Segctl(
      "submit-train --dataset pgdata --encoder resnet18 --prune-level 1 --epochs 1 "
      "--batch-size 4 --max-steps-per-epoch 1 --crop-size 64 --model-name lo-model --wait");
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(LargeObjects(), 1);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/models/lo-model"))
      << "the version is in PostgreSQL, not in the file store";

  testing::TempDir other_dir;
  auto other = testing::ServerProcess::Start(
      testing::SegserveBinary(), other_dir.path(),
      {"--database=" + conninfo_, "--blob_store=large_object", "--roles=serve",
       "--load_models=lo-model", "--registry_sync_seconds=1", "--drain_seconds=1"});
  ASSERT_TRUE(other.ok()) << other.status();
  const std::string target = (*other)->grpc_target();
  std::string listing;
  for (int i = 0; i < 600 && listing.find("LOADED") == std::string::npos; ++i) {
    listing = SegctlAt(target, "models list").second;
    if (listing.find("LOADED") == std::string::npos) std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_THAT(listing, HasSubstr("LOADED"));
  const std::string image = testing::FirstImageOf(dir_.path() + "/datasets/pgdata");
  ASSERT_FALSE(image.empty());
  auto [seg_code, seg_out] =
      SegctlAt(target, "segment --model lo-model --out " + other_dir.path() + "/masks " + image);
  EXPECT_EQ(seg_code, 0) << seg_out;
  EXPECT_TRUE(std::filesystem::exists(other_dir.path() + "/cache/models/lo-model"))
      << "the replica serves from its local copy of the large object";

  auto [del_code, del_out] = Segctl("models delete lo-model");
  EXPECT_EQ(del_code, 0) << del_out;
  EXPECT_EQ(LargeObjects(), 0) << "the large object went with its row";
  EXPECT_EQ((*other)->Stop(SIGTERM, milliseconds(30000)).value_or(-1), 0);
  EXPECT_EQ(server_->Stop(SIGTERM, milliseconds(30000)).value_or(-1), 0);
}

TEST_F(PostgresServerTest, ADataSetGeneratedOnOneReplicaIsListedByAnotherWithItsOwnDisk) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto [gen_code, gen_out] = Segctl("datasets generate --name shared --n 6 --size 64 --wait");
  ASSERT_EQ(gen_code, 0) << gen_out;
  // Another replica on another node: its data dir is empty, the index is the table.
  testing::TempDir other_dir;
  auto other = testing::ServerProcess::Start(
      testing::SegserveBinary(), other_dir.path(),
      {"--database=" + conninfo_, "--blob_store=large_object", "--roles=serve",
       "--bootstrap=false", "--drain_seconds=1"});
  ASSERT_TRUE(other.ok()) << other.status();
  const std::string target = (*other)->grpc_target();
  auto [list_code, listing] = SegctlAt(target, "datasets list");
  ASSERT_EQ(list_code, 0) << listing;
  EXPECT_THAT(listing, HasSubstr("shared"));
  EXPECT_THAT(listing, HasSubstr("6"));
  EXPECT_FALSE(std::filesystem::exists(other_dir.path() + "/datasets/shared"));
  // The name is taken everywhere, also where its files are not.
  auto [dup_code, dup_out] = SegctlAt(target, "datasets generate --name shared --n 6 --size 64");
  EXPECT_NE(dup_code, 0);
  EXPECT_THAT(dup_out, HasSubstr("already exists"));

  auto [del_code, del_out] = Segctl("datasets delete shared");
  ASSERT_EQ(del_code, 0) << del_out;
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/datasets/shared"));
  EXPECT_THAT(SegctlAt(target, "datasets list").second, Not(HasSubstr("shared")));
  EXPECT_EQ((*other)->Stop(SIGTERM, milliseconds(30000)).value_or(-1), 0);
  EXPECT_EQ(server_->Stop(SIGTERM, milliseconds(30000)).value_or(-1), 0);
}

TEST_F(PostgresServerTest, BadDatabaseFlagsStopTheStartWithTheReason) {
  // Unreachable: the reason names the database; no hang (connect timeout).
  const auto start = std::chrono::steady_clock::now();
  auto [code, out] = RunToExit("--database='host=/nonexistent-pg dbname=jobs user=segserve'");
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(30));
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(code, 124) << "segserve hung: " << out;
  // (The registry connects first: "model registry database host=...".)
  EXPECT_THAT(out, HasSubstr("database host=/nonexistent-pg"));

  // A password on the command line is refused and never echoed.
  std::tie(code, out) = RunToExit("--database=postgresql://segserve:s3cret-pw@localhost/jobs");
  EXPECT_NE(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("must not contain a password"));
  EXPECT_THAT(out, Not(HasSubstr("s3cret")));

  // Large objects without a database; an unknown blob store.
  std::tie(code, out) = RunToExit("--blob_store=large_object");
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("--blob_store: large_object needs --database"));
  std::tie(code, out) = RunToExit("--database='" + conninfo_ + "' --blob_store=s3");
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("--blob_store: must be 'directory' or 'large_object'"));
  // A password file without a database.
  std::tie(code, out) = RunToExit("--database_password_file=/dev/null");
  EXPECT_NE(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("--database_password_file: needs --database"));
}

}  // namespace
}  // namespace segserve
