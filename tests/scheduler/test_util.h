// File: tests/scheduler/test_util.h — helpers for the scheduler suites: a temp dir, the
// job-store backends the suites run against (SQLite, PostgreSQL), a scriptable test-double
// Runner (the seam), waiting on watch streams instead of sleeping, and reading metric
// values from the registry.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/job_store.h"
#include "server/scheduler/runner.h"
#include "server/scheduler/scheduler.h"

namespace segserve::scheduler::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string db() const { return path_ + "/jobs.db"; }

 private:
  std::string path_;
};

// The job-store backends every JobStore-level suite runs against. Suites are
// value-parameterized: INSTANTIATE_TEST_SUITE_P(Sqlite, Suite, Values(Backend::kSqlite)) and
// the same with Postgres; the PostgreSQL instances run as one ctest entry per binary
// (tests named Postgres*), so the binary starts one PostgreSQL, not one per test.
enum class Backend { kSqlite, kPostgres };
// "sqlite" / "postgres" in test names (ctest lists the parameter's printed value).
void PrintTo(Backend backend, std::ostream* os);

// The data one test's stores share: a SQLite file in a temp dir, or a fresh database on
// this binary's PostgreSQL (tests/testing/postgres_server.h).
class StoreFactory {
 public:
  explicit StoreFactory(Backend backend);
  // A new store on the same data (reopening = what a restarted server sees). For
  // PostgreSQL, an error says why the test PostgreSQL is missing (install-deps.sh).
  // `conninfo_extra` (PostgreSQL only) is appended to the connection string, e.g.
  // " user=other" to connect as another role.
  absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& conninfo_extra = "");
  // OK, or why this backend cannot be used (the test PostgreSQL did not start).
  absl::Status available() const;
  Backend backend() const { return backend_; }
  const TempDir& dir() const { return dir_; }
  // PostgreSQL: the test database's connection string (empty for SQLite).
  std::string conninfo() const;

 private:
  Backend backend_;
  TempDir dir_;
  absl::StatusOr<std::string> database_;
};

// A job row as the store tests insert it: a fixed creation time and {"name": id} as spec.
Job MakeJob(const std::string& id, int priority = 0, JobKind kind = JobKind::kTrain,
            const std::string& parent = "");

// Opens a store or fails the test with the reason (ASSERT inside a helper: check
// HasFatalFailure, or use it through the fixtures).
std::unique_ptr<JobStore> OpenOrFail(StoreFactory& factory);

// Spec: {"name": "a", "epochs": 3, "hold_before_epoch": 2, "fail": "message"}.
// Runs epochs last_completed_epoch+1..epochs; for each reports progress (val_iou =
// epoch/10), adds 8 training images and marks the epoch complete. With
// "hold_before_epoch" it waits before that epoch until Release(name) or cancellation.
// With "fail" it returns InternalError(fail) after the epochs. Result:
// {"name": ..., "val_iou": ..., "first_epoch": ...}.
std::string Spec(const std::string& name, int epochs = 1, int hold_before_epoch = 0,
                 const std::string& fail = "");

class ScriptedRunner : public Runner {
 public:
  absl::Status Run(const Job& job, JobContext& ctx) override;

  // Blocks until `count` jobs have started in total (or the job `name` started).
  void WaitForStarts(size_t count);
  void WaitHolding(const std::string& name);  // `name` is waiting at its hold point.
  void Release(const std::string& name);
  void ReleaseAll();

  std::vector<std::string> started() const;  // names, in start order
  std::vector<Job> started_jobs() const;     // as handed to Run
  std::vector<int> epochs_run(const std::string& name) const;
  bool saw_cancel(const std::string& name) const;
  int concurrent_max() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Job> started_;
  std::vector<std::string> names_;
  std::set<std::string> released_;
  std::set<std::string> holding_;
  std::set<std::string> saw_cancel_;
  std::map<std::string, std::vector<int>> epochs_;
  bool release_all_ = false;
  int running_ = 0;
  int concurrent_max_ = 0;
};

// Reads events until the terminal one (fails the test after 60 s as a safety net).
absl::StatusOr<Job> WaitTerminal(Scheduler& scheduler, const JobId& id);

// Value of a gauge or counter series, or -1 when absent.
double MetricValue(const metrics::Metrics& metrics, const std::string& name,
                   const std::map<std::string, std::string>& labels = {});

}  // namespace segserve::scheduler::testing
