// File: server/scheduler/runner.h — the seam between the scheduler and the code that does
// a job's work (server/training for TRAIN, susceptibility for ANALYSIS, data for SYNTH).
// One Runner per JobKind, registered with the Scheduler; tests use doubles.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/scheduler/job.h"

namespace segserve::scheduler {

// What a running job may tell the scheduler, and ask of it. Thread-compatible: call it
// from the thread that runs Runner::Run (or serialise calls yourself).
class JobContext {
 public:
  virtual ~JobContext() = default;

  // True once the job was cancelled by a user or the scheduler is shutting down. The
  // runner should stop at its next step, keep its last checkpoint and return
  // absl::CancelledError(). Which of the two it was is the scheduler's business.
  virtual bool cancelled() const = 0;

  // Latest progress: streamed to watchers at once, persisted at most every
  // SchedulerOptions::progress_persist_interval (and at epoch ends), and exported as
  // segserve_training_epoch{job_id} / segserve_training_val_iou{job_id}.
  virtual void ReportProgress(const JobProgress& progress) = 0;

  // Epoch `epoch` (1-based) is complete and its checkpoint is on disk. Persisted before
  // returning; after a crash the job is re-run with Job::last_completed_epoch == epoch.
  // Call it only after the checkpoint is durable.
  virtual absl::Status MarkEpochCompleted(int epoch) = 0;

  // OK while this run still holds the job. Aborted once the job's lease was lost (the
  // worker was paused or cut off past the lease and the job was re-queued or taken by
  // another worker): the runner must then write nothing more for the job — no checkpoint,
  // no model version — and return. Call it right before such a write; on a shared store it
  // asks the database (one query). The default says OK (test doubles, single box).
  virtual absl::Status CheckLease() { return absl::OkStatus(); }

  // Counts training images (segserve_training_images_total; its rate is throughput).
  virtual void AddTrainingImages(int64_t images) = 0;

  // Seconds one training step took in all, and of them the seconds it waited for its batch
  // (segserve_training_step_seconds_total, segserve_training_loader_wait_seconds_total: the
  // ratio of their rates is the share of training time the data loader costs). The default
  // ignores them (test doubles).
  virtual void AddTrainingStepTime(double /*step_seconds*/, double /*loader_wait_seconds*/) {}

  // Something the job's owner should know that does not stop the job, e.g. a damaged
  // checkpoint it recovered from: logged, sent to watchers as an event message, and kept as
  // the job's reason while it runs. The default ignores it (test doubles).
  virtual void Note(const std::string& /*message*/) {}

  // The job's result (opaque JSON object, e.g. model name/version and metrics); stored
  // with the job when Run returns OK. Sweep tables are built from the children's results.
  virtual void SetResult(std::string result_json) = 0;
};

class Runner {
 public:
  virtual ~Runner() = default;

  // Does the job's work on a scheduler worker thread (it may take hours). `job` carries
  // spec_json, restarts and last_completed_epoch (resume after it). Return OK when the
  // work is done; absl::CancelledError() when stopped because ctx.cancelled(); any other
  // error fails the job with that status as its reason. Must not throw (an exception is
  // caught and fails the job).
  virtual absl::Status Run(const Job& job, JobContext& ctx) = 0;
};

using RunnerMap = std::map<JobKind, std::shared_ptr<Runner>>;

}  // namespace segserve::scheduler
