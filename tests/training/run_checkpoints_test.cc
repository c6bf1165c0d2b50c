// Training checkpoints in PostgreSQL large objects (server/training/postgres_run_checkpoints.h)
// on a real PostgreSQL (tests/testing/postgres_server.h), with the job store's real schema
// for the fence: files saved by one trainer are restored, byte for byte, into another's
// empty run directory; a writer whose attempt is no longer the job's is refused and changes
// nothing; a corrupted object is refused; Remove leaves no large object behind. Named
// Postgres* (one ctest entry, run_checkpoints_test.Postgres).
#include "server/training/postgres_run_checkpoints.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/scheduler/postgres_job_store.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/server_process.h"

namespace segserve::training {
namespace {
namespace fs = std::filesystem;

class PostgresRunCheckpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto conninfo = testing::NewSharedDatabase();
    ASSERT_TRUE(conninfo.ok()) << conninfo.status();
    options_.conninfo = *conninfo;
    options_.what = "run checkpoint database";
    // The jobs table the fence reads, as the job store creates it.
    auto jobs = scheduler::PostgresJobStore::Open(options_);
    ASSERT_TRUE(jobs.ok()) << jobs.status();
    auto store = PostgresRunCheckpoints::Open(options_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto admin = postgres::Connection::Open(options_);
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = *std::move(admin);
    ASSERT_TRUE(admin_
                    ->ExecSql("INSERT INTO jobs (id, kind, state, attempt) "
                              "VALUES ('job-1', 'TRAIN', 'RUNNING', 1)")
                    .ok());
    fs::create_directories(first_.path() + "/runs/job-1");
    fs::create_directories(second_.path() + "/runs/job-1");
  }

  std::string FirstRun() const { return first_.path() + "/runs/job-1"; }
  std::string SecondRun() const { return second_.path() + "/runs/job-1"; }
  static void Write(const std::string& path, const std::string& bytes) {
    ASSERT_TRUE(common::WriteFileAtomically(path, bytes).ok());
  }
  static std::string Read(const std::string& path) { return common::ReadFile(path).value_or(""); }
  int64_t Count(const std::string& sql) {
    auto result = admin_->ExecSql(sql);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->Int(0, 0) : -1;
  }

  postgres::ConnectOptions options_;
  testing::TempDir first_, second_;  // two trainers' own disks
  std::unique_ptr<RunCheckpoints> store_;
  std::unique_ptr<postgres::Connection> admin_;
};

TEST_F(PostgresRunCheckpointsTest, FilesSavedByOneTrainerAreRestoredByAnother) {
  // Larger than one 1 MiB chunk, so the object is written and read in several calls.
  std::string latest(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < latest.size(); ++i) latest[i] = static_cast<char>(i * 31 % 251);
  Write(FirstRun() + "/latest.ckpt", latest);
  Write(FirstRun() + "/latest.optim", "adam state 1");
  Write(FirstRun() + "/best.ckpt", "best 1");
  ASSERT_TRUE(store_->Save("job-1", 1, FirstRun(), {"best.ckpt", "latest.optim", "latest.ckpt"}).ok());
  // Epoch 2 did not improve: only latest files; the old objects go with the new rows.
  Write(FirstRun() + "/latest.optim", "adam state 2");
  ASSERT_TRUE(store_->Save("job-1", 1, FirstRun(), {"latest.optim", "latest.ckpt"}).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM pg_largeobject_metadata"), 3);

  ASSERT_TRUE(store_->Restore("job-1", SecondRun()).ok());
  EXPECT_EQ(Read(SecondRun() + "/latest.ckpt"), latest);
  EXPECT_EQ(Read(SecondRun() + "/latest.optim"), "adam state 2");
  EXPECT_EQ(Read(SecondRun() + "/best.ckpt"), "best 1");
  // A local copy that matches is kept; one that differs is replaced.
  Write(SecondRun() + "/best.ckpt", "stale");
  ASSERT_TRUE(store_->Restore("job-1", SecondRun()).ok());
  EXPECT_EQ(Read(SecondRun() + "/best.ckpt"), "best 1");
  for (const auto& entry : fs::directory_iterator(SecondRun())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos);
  }
  // Nothing saved for another job: nothing restored, no error.
  EXPECT_TRUE(store_->Restore("job-2", SecondRun()).ok());
}

TEST_F(PostgresRunCheckpointsTest, AWriterWhoseAttemptIsOverIsRefusedAndChangesNothing) {
  Write(FirstRun() + "/latest.ckpt", "epoch 1 of attempt 1");
  ASSERT_TRUE(store_->Save("job-1", 1, FirstRun(), {"latest.ckpt"}).ok());
  // The job was re-queued and claimed again (attempt 2) while attempt 1 was paused.
  ASSERT_TRUE(admin_->ExecSql("UPDATE jobs SET attempt = 2 WHERE id = 'job-1'").ok());
  Write(FirstRun() + "/latest.ckpt", "epoch 2 of attempt 1 (late)");
  absl::Status late = store_->Save("job-1", 1, FirstRun(), {"latest.ckpt"});
  EXPECT_EQ(late.code(), absl::StatusCode::kAborted) << late;
  EXPECT_EQ(Count("SELECT count(*) FROM pg_largeobject_metadata"), 1) << "its object rolled back";
  ASSERT_TRUE(store_->Restore("job-1", SecondRun()).ok());
  EXPECT_EQ(Read(SecondRun() + "/latest.ckpt"), "epoch 1 of attempt 1");
  // The new attempt writes; a finished job takes no more writes from anyone.
  Write(SecondRun() + "/latest.ckpt", "epoch 2 of attempt 2");
  EXPECT_TRUE(store_->Save("job-1", 2, SecondRun(), {"latest.ckpt"}).ok());
  ASSERT_TRUE(admin_->ExecSql("UPDATE jobs SET state = 'SUCCEEDED' WHERE id = 'job-1'").ok());
  EXPECT_EQ(store_->Save("job-1", 2, SecondRun(), {"latest.ckpt"}).code(),
            absl::StatusCode::kAborted);
}

TEST_F(PostgresRunCheckpointsTest, ACorruptedObjectIsRefusedAndTheLocalFileKept) {
  Write(FirstRun() + "/latest.ckpt", "good bytes");
  ASSERT_TRUE(store_->Save("job-1", 1, FirstRun(), {"latest.ckpt"}).ok());
  ASSERT_TRUE(admin_
                  ->ExecSql("SELECT lo_put(blob_oid, 0, '\\x4241'::bytea) FROM run_files "
                            "WHERE job_id = 'job-1'")
                  .ok());
  Write(SecondRun() + "/latest.ckpt", "local");
  absl::Status restored = store_->Restore("job-1", SecondRun());
  EXPECT_EQ(restored.code(), absl::StatusCode::kDataLoss) << restored;
  EXPECT_NE(restored.message().find("latest.ckpt"), std::string::npos) << restored;
  EXPECT_EQ(Read(SecondRun() + "/latest.ckpt"), "local");
}

TEST_F(PostgresRunCheckpointsTest, RemoveLeavesNoRowAndNoLargeObject) {
  Write(FirstRun() + "/latest.ckpt", "x");
  Write(FirstRun() + "/best.ckpt", "y");
  ASSERT_TRUE(store_->Save("job-1", 1, FirstRun(), {"best.ckpt", "latest.ckpt"}).ok());
  ASSERT_EQ(Count("SELECT count(*) FROM pg_largeobject_metadata"), 2);
  ASSERT_TRUE(store_->Remove("job-1").ok());
  EXPECT_EQ(Count("SELECT count(*) FROM pg_largeobject_metadata"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM run_files"), 0);
  EXPECT_TRUE(store_->Remove("job-1").ok());
}

}  // namespace
}  // namespace segserve::training
