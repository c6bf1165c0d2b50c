// File: server/training/run_checkpoints.h — where a training run's checkpoints outlive the
// process that wrote them, so that another trainer resumes the job. Two backends behind one
// interface, chosen by --blob_store (with --database):
//   - the shared directory (`directory`, and the single box): runs/<job>/ itself is on the
//     volume every trainer mounts; the runner writes there and nothing else is needed
//     (SharedDirectoryRunCheckpoints: Save and Restore do nothing).
//   - PostgreSQL large objects (`large_object`, PostgresRunCheckpoints in
//     postgres_run_checkpoints.h): each trainer's runs/<job>/ is on its own disk; after an
//     epoch's files are written, Save copies them into large objects, in a transaction that
//     commits only while the job is still RUNNING under the writer's attempt (a worker that
//     lost its lease cannot overwrite its successor's checkpoints); Restore brings them into
//     the local run directory before a resumed run reads them, each checked against its
//     SHA-256.
// Torch-free.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace segserve::training {

class RunCheckpoints {
 public:
  virtual ~RunCheckpoints() = default;
  // Brings the files saved for `job_id` into `run_dir` where the local copy is missing or
  // differs. DataLoss when a saved file's bytes do not match its SHA-256 (nothing is
  // replaced then).
  virtual absl::Status Restore(const std::string& job_id, const std::string& run_dir) = 0;
  // Keeps `files` (names in `run_dir`, written completely) as attempt `attempt` of
  // `job_id`. Aborted when the job is no longer RUNNING under that attempt (nothing
  // changes then).
  virtual absl::Status Save(const std::string& job_id, int attempt, const std::string& run_dir,
                            const std::vector<std::string>& files) = 0;
  // Forgets what was saved for `job_id` (its model is registered). Idempotent.
  virtual absl::Status Remove(const std::string& job_id) = 0;
  virtual std::string Describe() const = 0;
};

// runs/<job>/ on the shared volume is the store.
class SharedDirectoryRunCheckpoints final : public RunCheckpoints {
 public:
  absl::Status Restore(const std::string&, const std::string&) override {
    return absl::OkStatus();
  }
  absl::Status Save(const std::string&, int, const std::string&,
                    const std::vector<std::string>&) override {
    return absl::OkStatus();
  }
  absl::Status Remove(const std::string&) override { return absl::OkStatus(); }
  std::string Describe() const override { return "run checkpoints in the data dir's runs/"; }
};

}  // namespace segserve::training
