// Trainers that share no volume (--blob_store=large_object): a trainer killed with SIGKILL
// mid-job leaves its completed epochs' checkpoints in PostgreSQL large objects, and a second
// trainer with its own, empty data dir fetches the job's data set from the database (the
// first generated it), restores the checkpoints and resumes the job after its last
// completed epoch (without them the resume fails: "latest.ckpt is missing"); the job
// finishes once with one model version and the saved checkpoints are dropped with it; a
// delete through the second trainer removes the data set's objects. A set uploaded through
// one replica is listed and fetched by another on its own disk; a retry of that upload
// there answers the set, another upload of the name is refused. Named Postgres* (one
// ctest entry with the binary's PostgreSQL).
#include <signal.h>

#include <filesystem>
#include <regex>
#include <thread>

#include "client/lib/client.h"
#include "gtest/gtest.h"
#include "segserve/v1/training.grpc.pb.h"
#include "tests/testing/commands.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

class PostgresTrainerDisksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto conninfo = testing::NewSharedDatabase();
    ASSERT_TRUE(conninfo.ok()) << conninfo.status();
    conninfo_ = *conninfo;
    postgres::ConnectOptions admin;
    admin.conninfo = conninfo_;
    auto connection = postgres::Connection::Open(admin);
    ASSERT_TRUE(connection.ok()) << connection.status();
    admin_ = *std::move(connection);
  }

  absl::StatusOr<std::unique_ptr<testing::ServerProcess>> StartTrainer(const std::string& dir) {
    return testing::ServerProcess::Start(
        testing::SegserveBinary(), dir,
        {"--database=" + conninfo_, "--blob_store=large_object", "--job_lease_seconds=3",
         "--training_slots=1", "--bootstrap=false", "--drain_seconds=1"});
  }
  std::pair<int, std::string> Segctl(const testing::ServerProcess& server, const std::string& args) {
    testing::CommandResult r = testing::RunCommand(testing::SegctlBinary() + " --server " +
                                                   server.grpc_target() + " " + args);
    return {r.exit_code, r.output};
  }
  v1::Job Get(const testing::ServerProcess& server, const std::string& id) {
    client::ClientOptions options;
    options.target = server.grpc_target();
    options.timeout = seconds(30);
    auto client = client::Client::Create(options);
    v1::Job job;
    if (!client.ok()) return job;
    auto stub = v1::Training::NewStub((*client)->channel());
    v1::JobRef ref;
    ref.set_job_id(id);
    auto context = (*client)->NewContext();
    grpc::Status status = stub->GetJob(context.get(), ref, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return job;
  }
  int64_t Count(const std::string& sql) {
    auto result = admin_->ExecSql(sql);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->Int(0, 0) : -1;
  }

  std::string conninfo_;
  std::unique_ptr<postgres::Connection> admin_;
  testing::TempDir first_dir_, second_dir_;  // each trainer's own disk
};

TEST_F(PostgresTrainerDisksTest, ATrainerOnItsOwnDiskResumesAKilledTrainersJobFromTheDatabase) {
  auto first = StartTrainer(first_dir_.path());
  ASSERT_TRUE(first.ok()) << first.status();
  auto [gen_code, gen_out] = Segctl(**first, "datasets generate --name own --n 8 --size 64 --wait");
  ASSERT_EQ(gen_code, 0) << gen_out;
  // The data set's files are in the database with its row.
  const int64_t dataset_files = Count("SELECT count(*) FROM dataset_files WHERE dataset = 'own'");
  EXPECT_GT(dataset_files, 8) << "8 images, their masks, the manifest";
  EXPECT_EQ(Count("SELECT count(*) FROM pg_largeobject_metadata"), dataset_files);
  auto [code, out] = Segctl(
      **first,
      "submit-train --dataset own --encoder resnet18 --prune-level 1 --epochs 3 --batch-size 4 "
      "--max-steps-per-epoch 1 --crop-size 64 --model-name disks");
  ASSERT_EQ(code, 0) << out;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(out, match, std::regex("submitted \\S+ (job-[0-9a-f]+)"))) << out;
  const std::string id = match[1];

  // Kill the first trainer once an epoch is durable and the next one runs.
  v1::Job seen;
  const auto deadline = std::chrono::steady_clock::now() + seconds(300);
  while (std::chrono::steady_clock::now() < deadline) {
    seen = Get(**first, id);
    if (seen.progress().epoch() >= 2 || seen.state() == v1::JOB_STATE_SUCCEEDED) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_EQ(seen.state(), v1::JOB_STATE_RUNNING) << "the job ended before the kill";
  ASSERT_GE(seen.progress().epoch(), 2);
  ASSERT_TRUE((*first)->Stop(SIGKILL, milliseconds(10000)).status().code() ==
              absl::StatusCode::kInternal);  // died by the signal
  first->reset();
  EXPECT_GE(Count("SELECT count(*) FROM run_files WHERE job_id = '" + id + "'"), 2)
      << "latest.ckpt and latest.optim of the completed epoch are in the database";

  auto second = StartTrainer(second_dir_.path());
  ASSERT_TRUE(second.ok()) << second.status();
  v1::Job done;
  const auto finish = std::chrono::steady_clock::now() + seconds(300);
  while (std::chrono::steady_clock::now() < finish) {
    done = Get(**second, id);
    if (done.state() == v1::JOB_STATE_SUCCEEDED || done.state() == v1::JOB_STATE_FAILED) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  EXPECT_EQ(done.restarts(), 1);
  // It trained on the copy it fetched into its own disk.
  EXPECT_TRUE(fs::exists(second_dir_.path() + "/datasets/own/.files.sha256"));
  EXPECT_TRUE(fs::exists(second_dir_.path() + "/datasets/own/dataset.json"));
  // One version, registered once; the saved checkpoints went with the job's success.
  EXPECT_EQ(Count("SELECT count(*) FROM model_versions WHERE name = 'disks'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM run_files"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM pg_largeobject_metadata"), 1 + dataset_files)
      << "the model's and the data set's";
  // A delete through this trainer takes the set's objects with its row.
  auto [del_code, del_out] = Segctl(**second, "datasets delete own");
  ASSERT_EQ(del_code, 0) << del_out;
  EXPECT_FALSE(fs::exists(second_dir_.path() + "/datasets/own"));
  EXPECT_EQ(Count("SELECT count(*) FROM dataset_files"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM pg_largeobject_metadata"), 1) << "only the model's";
  EXPECT_EQ((*second)->Stop(SIGTERM, milliseconds(30000)).value_or(-1), 0);
}

TEST_F(PostgresTrainerDisksTest,
       AnUploadThroughOneReplicaIsFetchedByAnotherAndItsRetryThereIsTheSet) {
  auto first = StartTrainer(first_dir_.path());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = StartTrainer(second_dir_.path());
  ASSERT_TRUE(second.ok()) << second.status();
  testing::TempDir local;
  const std::string set = local.path() + "/set";
  auto [synth_code, synth_out] =
      Segctl(**first, "synth --out " + set + " --n 6 --size 64 --seed 5 --name local");
  ASSERT_EQ(synth_code, 0) << synth_out;
  auto [up_code, up_out] = Segctl(**first, "datasets upload " + set + " --name up --quiet");
  ASSERT_EQ(up_code, 0) << up_out;
  const int64_t files = Count("SELECT count(*) FROM dataset_files WHERE dataset = 'up'");
  EXPECT_GT(files, 6);

  // The other replica lists it without having it.
  auto [list_code, list_out] = Segctl(**second, "datasets list");
  ASSERT_EQ(list_code, 0) << list_out;
  EXPECT_TRUE(std::regex_search(list_out, std::regex("(^|\\n)up\\s+6\\s"))) << list_out;
  EXPECT_FALSE(fs::exists(second_dir_.path() + "/datasets/up"));
  // The client's retry lands on the other replica: the same upload answers the set, which
  // that replica now holds as a verified copy.
  auto [retry_code, retry_out] = Segctl(**second, "datasets upload " + set + " --name up --quiet");
  ASSERT_EQ(retry_code, 0) << retry_out;
  EXPECT_TRUE(fs::exists(second_dir_.path() + "/datasets/up/.files.sha256"));
  EXPECT_EQ(Count("SELECT count(*) FROM dataset_files WHERE dataset = 'up'"), files);
  // Other files under the name: refused there too, and nothing is replaced.
  const std::string other = local.path() + "/other";
  auto [other_code, other_out] =
      Segctl(**second, "synth --out " + other + " --n 4 --size 64 --seed 9 --name local");
  ASSERT_EQ(other_code, 0) << other_out;
  auto [dup_code, dup_out] = Segctl(**second, "datasets upload " + other + " --name up --quiet");
  EXPECT_NE(dup_code, 0) << dup_out;
  EXPECT_NE(dup_out.find("already exists"), std::string::npos) << dup_out;
  EXPECT_EQ(Count("SELECT count(*) FROM dataset_files WHERE dataset = 'up'"), files);
  EXPECT_EQ(Count("SELECT images FROM datasets WHERE name = 'up'"), 6);
}

}  // namespace
}  // namespace segserve
