// File: server/training/training_runner.h — the TRAIN job runner: trains a U-net as a
// TrainSpec says (Adam, cross-entropy + soft Dice, IoU validation, per-epoch checkpoints under
// <data_dir>/runs/<job_id>/, resume, early stopping), then evaluates it in-domain and
// cross-domain, computes reference activation statistics and registers the best checkpoint in
// the model store. Torch-free header.
//
// Files under <data_dir>/runs/<job_id>/ (each written atomically):
//   latest.ckpt   model after the last completed epoch; metadata: epoch, best_val_iou,
//                 best_epoch, history (per-epoch loss and IoUs), train_spec
//   latest.optim  Adam state after that epoch (torch::save archive with its epoch)
//   best.ckpt     model of the epoch with the best validation IoU
//   registered.json  {"name", "version"} once the model is in the store (a re-run after a
//                 crash reuses it instead of registering twice; a crash between the store
//                 and this file is caught by the version's source_job_id)
//   *.damaged     a checkpoint that failed its checksum on resume, kept for inspection:
//                 the job resumes from best.ckpt instead (an earlier complete state) or,
//                 when that is damaged or absent too, from epoch 0, and says so in a job
//                 event (JobContext::Note); it never trains on a damaged file
//
// Determinism (CPU): the same spec and seed give the same losses and weights for the same
// intra_op_threads — initialisation draws from torch's global generator seeded under a lock,
// batches come from data::Loader (deterministic by seed and epoch). Not deterministic: CUDA
// kernels, a different thread count (reduction order changes the low bits), and concurrent
// jobs that seed torch's global generator while another job initialises (serialised here,
// but other code in the process may draw from it).
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "server/inference/batch_scheduler.h"
#include "server/registry/model_store.h"
#include "server/scheduler/runner.h"
#include "server/training/run_checkpoints.h"

namespace segserve::data {
class DatasetIndex;
}  // namespace segserve::data

namespace segserve::training {

struct TrainingOptions {
  std::string data_dir;                // holds datasets/, runs/, models/
  // The server's data-set index: data sets are opened through its LocalDir, which fetches
  // those whose files are in the database (--blob_store=large_object). Null (tools, unit
  // tests): the folders under data_dir/datasets. Not owned.
  data::DatasetIndex* datasets = nullptr;
  std::string default_device = "cpu";  // when the spec names none
  // at::set_num_threads before training (process-wide); 0 leaves LibTorch's setting.
  int intra_op_threads = 0;
  // Loader decode threads per loader.
  int loader_workers = 2;
  // NHWC weights and activations: faster at 256x256 with oneDNN (bench/training,
  // docs/PERFORMANCE.md), slower on tiny images (64x64), where the tests turn it off.
  bool channels_last = true;
  // Evaluation forward passes (validation after every epoch, the test and cross-domain sets
  // at the end) through the serving core when the run's device is `eval_device`: a snapshot
  // of the model, prepared as served (eval mode, BatchNorm folded), runs as background work
  // on the executor that owns that device, so evaluation shares it with Segment traffic under
  // the batching scheduler's priorities. Null (tools, unit tests of the loop): evaluation runs
  // on the job's own thread. Not owned.
  inference::BatchScheduler* eval_scheduler = nullptr;
  std::string eval_device = "cpu";
  // Where the trained model is registered: the server's store (files or PostgreSQL). Null
  // (tools, unit tests): the file store under data_dir. Not owned.
  registry::ModelStore* model_store = nullptr;
  // Called after the model is registered (and aliases set), e.g. to hot-load it.
  std::function<void(const registry::StoredVersion&)> on_registered;
  // Where checkpoints outlive this process for another trainer (run_checkpoints.h): the
  // files of each completed epoch are saved there, and restored into runs/<id>/ before a
  // run resumes; dropped once the model is registered. Null: runs/<id>/ on the shared data
  // dir is enough. Not owned.
  RunCheckpoints* run_checkpoints = nullptr;
};

class TrainingRunner : public scheduler::Runner {
 public:
  explicit TrainingRunner(TrainingOptions options) : options_(std::move(options)) {}
  // Parses and validates job.spec_json (InvalidArgument / NotFound as ValidateTrainSpec), then
  // trains from job.last_completed_epoch (or from runs/<id>/latest.ckpt when it is newer),
  // evaluates and registers. CancelledError when ctx.cancelled() (checked every step; the last
  // completed epoch's checkpoint is kept).
  absl::Status Run(const scheduler::Job& job, scheduler::JobContext& ctx) override;

  const TrainingOptions& options() const { return options_; }

 private:
  const TrainingOptions options_;
};

}  // namespace segserve::training
