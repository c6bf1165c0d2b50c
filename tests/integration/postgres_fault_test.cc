// kill -9 of the real segserve during a trained model's registration in the PostgreSQL
// registry (--database), for both blob backends: what fault_test.cc's
// SigkillDuringATrainedModelsRegistrationRegistersItExactlyOnce does for the file store.
// After the restart the job SUCCEEDS with restarts 1, exactly one version names it as its
// source job, and that version serves.
//
// Kill points, observed rather than timed:
//  - shared directory, while the blob is written: the temporary file's creation (inotify);
//  - shared directory, after the blob is complete (written, synced, renamed: inotify) and
//    before the row commits: the test holds the name's version-numbering row, so the row's
//    transaction waits for it, and the kill lands once pg_stat_activity shows it waiting;
//  - large objects, written inside the row's transaction and not committed: the same wait.
// The lock wait is the test's: a registration never waits for another when nothing else
// registers the name, so the kill point is exact instead of a race with the commit.
// What a kill leaves: in the directory backend a file no row references (kept while younger
// than an hour, since it could be another replica's write in flight; removed by the next Open
// once older, shown by ageing it); with large objects nothing (counted).
// Named Postgres* (one ctest entry with the binary's PostgreSQL).
#include <signal.h>
#include <sys/time.h>

#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "server/common/file_util.h"
#include "server/postgres/connection.h"
#include "tests/integration/fault_harness.h"
#include "tests/testing/postgres_server.h"

namespace segserve::fault {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::EndsWith;
using ::testing::HasSubstr;

constexpr milliseconds kEventTimeout(120000);

// Regular files directly in `dir`.
std::set<std::string> Files(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) names.insert(entry.path().filename().string());
  }
  return names;
}

class PostgresFaultTest : public FaultTest {
 protected:
  void SetUp() override {
    auto conninfo = testing::NewSharedDatabase();
    ASSERT_TRUE(conninfo.ok()) << conninfo.status();
    conninfo_ = *conninfo;
    holder_ = Connect();
    observer_ = Connect();
  }

  std::unique_ptr<postgres::Connection> Connect() {
    postgres::ConnectOptions options;
    options.conninfo = conninfo_;
    options.what = "test connection";
    options.application_name = "segserve-test";
    options.statement_timeout = milliseconds(60000);
    auto db = postgres::Connection::Open(options);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? std::move(*db) : nullptr;
  }

  void StartWith(const std::string& blobs) {
    StartServer({"--database=" + conninfo_, "--blob_store=" + blobs, "--drain_seconds=1"});
  }

  int64_t Count(const std::string& sql) {
    auto result = observer_->ExecSql(sql);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->Int(0, 0) : -1;
  }

  // Holds `name`'s row in model_names (inserting it uncommitted when absent), so that a
  // registration's transaction waits at its version number: after its blob is written, before
  // its row can commit. The server's lock_timeout (5 s) bounds the wait.
  void HoldVersionNumbering(const std::string& name) {
    ASSERT_TRUE(holder_->Begin().ok());
    auto held = holder_->ExecSql(absl::StrCat(
        "INSERT INTO model_names (name, highest_version) VALUES ('", name,
        "', 0) ON CONFLICT (name) DO UPDATE SET highest_version = model_names.highest_version"));
    ASSERT_TRUE(held.ok()) << held.status();
  }
  void ReleaseVersionNumbering() { holder_->Rollback(); }

  // Waits until a session of the server waits for a lock; returns its backend pid.
  int64_t WaitForLockWaiter() {
    const auto give_up = std::chrono::steady_clock::now() + kEventTimeout;
    while (std::chrono::steady_clock::now() < give_up) {
      auto waiting = observer_->ExecSql(
          "SELECT coalesce(min(pid), 0) FROM pg_stat_activity WHERE datname = current_database() "
          "AND wait_event_type = 'Lock' AND application_name <> 'segserve-test'");
      EXPECT_TRUE(waiting.ok()) << waiting.status();
      if (!waiting.ok()) return 0;
      if (waiting->Int(0, 0) != 0) return waiting->Int(0, 0);
      std::this_thread::sleep_for(milliseconds(2));
    }
    ADD_FAILURE() << "no registration waited for the version number";
    return 0;
  }

  // Waits until backend `pid` has ended (a killed client's session ends when it next reads).
  void WaitSessionGone(int64_t pid) {
    for (int i = 0; i < 3000; ++i) {
      if (Count(absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE pid = ", pid)) == 0) {
        return;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    ADD_FAILURE() << "backend " << pid << " of the killed server is still there";
  }

  v1::Job SubmitRegistering(const std::string& model) {
    v1::TrainSpec spec = TinySpec("reg", 1, 1);
    spec.set_model_name(model);
    v1::Job job;
    grpc::Status status = SubmitTrain(spec, &job);
    EXPECT_TRUE(status.ok()) << StatusText(status);
    return job;
  }

  // The restarted server finishes `job`: SUCCEEDED after one restart, exactly one version
  // names it as its source job, and that version serves.
  void ExpectRegisteredOnceAndServed(const v1::Job& job, const std::string& model) {
    const v1::Job done = WaitTerminal(job.job_id());
    ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
    EXPECT_EQ(done.restarts(), 1);
    v1::ListModelsResponse models;
    ASSERT_TRUE(ListModels(&models).ok());
    std::vector<int64_t> of_this_job;
    for (const auto& version : models.models()) {
      if (version.source_job_id() == job.job_id()) of_this_job.push_back(version.version());
    }
    ASSERT_EQ(of_this_job.size(), 1u) << "registered " << of_this_job.size() << " times";
    EXPECT_EQ(of_this_job[0], done.model_version());
    EXPECT_EQ(Count(absl::StrCat("SELECT count(*) FROM model_versions WHERE name = '", model,
                                 "' AND metadata->>'source_job_id' = '", job.job_id(), "'")),
              1);
    grpc::Status loaded = LoadModel(model, done.model_version());  // verifies the blob's SHA-256
    ASSERT_TRUE(loaded.ok()) << StatusText(loaded);
    grpc::Status served = Segment(model, done.model_version());
    EXPECT_TRUE(served.ok()) << StatusText(served);
  }

  std::string conninfo_;
  std::unique_ptr<postgres::Connection> holder_;    // holds the version-numbering row
  std::unique_ptr<postgres::Connection> observer_;  // counts, pg_stat_activity
};

TEST_F(PostgresFaultTest,
       SigkillDuringASharedDirectoryRegistrationRegistersOnceAndOpenRemovesWhatItLeft) {
  ASSERT_NO_FATAL_FAILURE(StartWith("directory"));
  ASSERT_NO_FATAL_FAILURE(MakeDataset("reg", 8));
  const std::string blob_dir = data_dir_ + "/blobs/models/reg-model";
  ASSERT_TRUE(common::MakeDirectories(blob_dir).ok());  // so the watch can start first
  std::vector<std::string> left;                        // what the kills left, one file each
  for (const bool before_commit : {false, true}) {
    SCOPED_TRACE(before_commit ? "kill between the blob and the row's commit"
                               : "kill while the blob is written");
    auto watch = DirWatch::Create(blob_dir);
    ASSERT_TRUE(watch.ok()) << watch.status();
    const std::set<std::string> before = Files(blob_dir);
    if (before_commit) ASSERT_NO_FATAL_FAILURE(HoldVersionNumbering("reg-model"));
    const v1::Job job = SubmitRegistering("reg-model");
    ASSERT_FALSE(job.job_id().empty());
    if (before_commit) {
      // The blob is complete (renamed into place after its fsync); its row waits on us.
      auto renamed = (*watch)->WaitFor("", /*renamed=*/true, kEventTimeout);
      ASSERT_TRUE(renamed.ok()) << renamed.status();
      EXPECT_THAT(*renamed, EndsWith(".ckpt"));
      const int64_t waiter = WaitForLockWaiter();
      ASSERT_NE(waiter, 0);
      ASSERT_NO_FATAL_FAILURE(Kill());
      ReleaseVersionNumbering();
      WaitSessionGone(waiter);
    } else {
      auto created = (*watch)->WaitFor("", /*renamed=*/false, kEventTimeout);
      ASSERT_TRUE(created.ok()) << created.status();
      ASSERT_NO_FATAL_FAILURE(Kill());
    }
    // The kill landed where intended: one new file, the temporary one or the complete blob,
    // and no row references it.
    std::vector<std::string> new_files;
    for (const std::string& name : Files(blob_dir)) {
      if (!before.count(name)) new_files.push_back(name);
    }
    ASSERT_EQ(new_files.size(), 1u);
    if (before_commit) {
      EXPECT_THAT(new_files[0], EndsWith(".ckpt"));
    } else {
      EXPECT_THAT(new_files[0], HasSubstr(".ckpt.tmp.")) << "the blob was complete at the kill";
    }
    EXPECT_EQ(Count("SELECT count(*) FROM model_versions"), before_commit ? 1 : 0);
    left.push_back(new_files[0]);

    ASSERT_NO_FATAL_FAILURE(StartWith("directory"));
    ASSERT_NO_FATAL_FAILURE(ExpectRegisteredOnceAndServed(job, "reg-model"));
    EXPECT_EQ(Count(absl::StrCat("SELECT count(*) FROM model_versions WHERE blob_path = "
                                 "'reg-model/",
                                 new_files[0], "'")),
              0);
  }
  // Both leftovers are still there: younger than an hour, they could be another replica's
  // writes in flight. Aged past the hour, the next Open removes them and nothing else.
  for (const std::string& name : left) {
    const std::string path = blob_dir + "/" + name;
    ASSERT_TRUE(fs::exists(path)) << name;
    struct timeval old[2];
    ::gettimeofday(&old[0], nullptr);
    old[0].tv_sec -= 2 * 3600;
    old[1] = old[0];
    ASSERT_EQ(::utimes(path.c_str(), old), 0);
  }
  ASSERT_NO_FATAL_FAILURE(StopGracefully());
  ASSERT_NO_FATAL_FAILURE(StartWith("directory"));
  for (const std::string& name : left) EXPECT_FALSE(fs::exists(blob_dir + "/" + name)) << name;
  EXPECT_EQ(static_cast<int64_t>(Files(blob_dir).size()),
            Count("SELECT count(*) FROM model_versions WHERE blob_path IS NOT NULL"));
  EXPECT_EQ(Files(blob_dir).size(), 2u);
  for (int64_t version : {1, 2}) {
    grpc::Status loaded = LoadModel("reg-model", version);
    EXPECT_TRUE(loaded.ok()) << "v" << version << ": " << StatusText(loaded);
    grpc::Status served = Segment("reg-model", version);
    EXPECT_TRUE(served.ok()) << "v" << version << ": " << StatusText(served);
  }
  ASSERT_NO_FATAL_FAILURE(StopGracefully());
}

TEST_F(PostgresFaultTest,
       SigkillBeforeALargeObjectRegistrationCommitsRegistersOnceAndLeavesNoObject) {
  ASSERT_NO_FATAL_FAILURE(StartWith("large_object"));
  ASSERT_NO_FATAL_FAILURE(MakeDataset("reg", 8));
  ASSERT_NO_FATAL_FAILURE(HoldVersionNumbering("lo-model"));
  const v1::Job job = SubmitRegistering("lo-model");
  ASSERT_FALSE(job.job_id().empty());
  // The large object is created and written in the row's transaction, which now waits.
  const int64_t waiter = WaitForLockWaiter();
  ASSERT_NE(waiter, 0);
  ASSERT_NO_FATAL_FAILURE(Kill());
  ReleaseVersionNumbering();
  WaitSessionGone(waiter);
  // (The run's epoch checkpoints are large objects too, listed in run_files until the job
  // registers its model, and so are the data set's files, listed in dataset_files.)
  EXPECT_EQ(Count("SELECT count(*) FROM pg_largeobject_metadata WHERE oid NOT IN "
                  "(SELECT blob_oid FROM run_files UNION SELECT blob_oid FROM dataset_files)"),
            0)
      << "the killed transaction's large object outlived it";
  EXPECT_EQ(Count("SELECT count(*) FROM model_versions"), 0);

  ASSERT_NO_FATAL_FAILURE(StartWith("large_object"));
  ASSERT_NO_FATAL_FAILURE(ExpectRegisteredOnceAndServed(job, "lo-model"));
  EXPECT_EQ(Count("SELECT count(*) FROM pg_largeobject_metadata WHERE oid NOT IN "
                  "(SELECT blob_oid FROM dataset_files)"),
            1)
      << "the model's";
  EXPECT_EQ(Count("SELECT count(*) FROM run_files"), 0);
  ASSERT_NO_FATAL_FAILURE(StopGracefully());
}

}  // namespace
}  // namespace segserve::fault
