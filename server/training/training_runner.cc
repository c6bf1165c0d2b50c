// File: server/training/training_runner.cc — the TRAIN job: set-up, resume, the epoch loop
// and checkpoints. Evaluation and registration after the last epoch are in finalize.cc.
#include "server/training/training_runner.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/model/checkpoint.h"
#include "server/model/device.h"
#include "server/model/state_dict.h"
#include "server/model/torch_status.h"
#include "server/model/tensor_memory.h"
#include "server/training/finalize.h"
#include "server/training/optimizer_state.h"
#include "server/training/train_spec.h"
#include "server/training/trainer_internal.h"

namespace segserve::training {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// What latest.ckpt's metadata carries besides the weights.
struct RunState {
  int epoch = 0;
  double best_val_iou = -1;
  int best_epoch = 0;
  int since_improvement = 0;
  json history = json::array();
};

json StateJson(const RunState& s, const TrainSpec& spec) {
  return {{"epoch", s.epoch},           {"best_val_iou", s.best_val_iou},
          {"best_epoch", s.best_epoch}, {"since_improvement", s.since_improvement},
          {"history", s.history},       {"train_spec", TrainSpecToJson(spec)}};
}

RunState StateFromJson(const json& j) {
  RunState s;
  s.epoch = j.value("epoch", 0);
  s.best_val_iou = j.value("best_val_iou", -1.0);
  s.best_epoch = j.value("best_epoch", 0);
  s.since_improvement = j.value("since_improvement", 0);
  if (j.contains("history") && j["history"].is_array()) s.history = j["history"];
  return s;
}

// Removes what a kill -9 during an atomic write left in the run directory (only this job
// writes there): "<file>.tmp.<pid>.<random>", as large as a checkpoint.
void RemoveTemporaries(const std::string& run_dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> stale;
  for (const auto& entry : std::filesystem::directory_iterator(run_dir, ec)) {
    if (entry.path().filename().string().find(".tmp.") != std::string::npos) {
      stale.push_back(entry.path());
    }
  }
  for (const auto& path : stale) {
    LOG(WARNING) << "training: removing " << path.string() << " (an interrupted write)";
    std::filesystem::remove(path, ec);
  }
}

// Renames a damaged file to <path>.damaged (replacing an older one).
absl::Status SetAside(const std::string& path) {
  std::error_code ec;
  std::filesystem::rename(path, path + ".damaged", ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot set aside ", path, ": ", ec.message()));
  return absl::OkStatus();
}

class TrainJob {
 public:
  TrainJob(const TrainingOptions& options, const scheduler::Job& job, scheduler::JobContext& ctx)
      : options_(options), job_(job), ctx_(ctx) {}

  absl::Status Run();

 private:
  absl::Status SetUp();
  // Restores model and state from runs/<job>/ (true), or leaves a fresh start (false).
  absl::StatusOr<bool> Resume();
  absl::Status BuildModel();
  absl::Status TrainEpoch(int epoch);
  // `timing`: the epoch's train_seconds, loader_wait_seconds and val_seconds, kept in its
  // history entry.
  absl::Status EndEpoch(int epoch, double train_loss, const ConfusionMatrix& val,
                        const json& timing);
  void Report(int epoch, int64_t step, double loss);
  // Drops the checkpoints saved for other trainers (TrainingOptions::run_checkpoints).
  void ForgetSavedCheckpoints();
  bool cancelled() const { return ctx_.cancelled(); }

  const TrainingOptions& options_;
  const scheduler::Job& job_;
  scheduler::JobContext& ctx_;

  TrainSpec spec_;
  RunContext run_;
  RunState state_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  // fp16 only; reset on resume (it settles within a few steps).
  std::unique_ptr<internal::LossScaler> loss_scaler_;
  std::unique_ptr<data::Loader> train_loader_, val_loader_;
  int64_t steps_per_epoch_ = 0;
  double last_val_iou_ = 0;
  // Throughput and ETA over this process's run.
  int64_t steps_done_ = 0, images_done_ = 0;
  double train_seconds_ = 0, eval_seconds_ = 0;
  int evals_done_ = 0;
  Clock::time_point epoch_start_;
};

absl::Status TrainJob::SetUp() {
  ASSIGN_OR_RETURN(spec_, TrainSpecFromJsonString(job_.spec_json));
  RETURN_IF_ERROR(ValidateTrainSpec(spec_, options_.data_dir, options_.datasets));
  if (options_.intra_op_threads > 0) at::set_num_threads(options_.intra_op_threads);
  run_.spec = spec_;
  run_.job_id = job_.id;
  run_.data_dir = options_.data_dir;
  run_.datasets = options_.datasets;
  run_.channels_last = options_.channels_last;
  run_.loader_workers = options_.loader_workers;
  const std::string device = spec_.device.empty() ? options_.default_device : spec_.device;
  RETURN_IF_ERROR(model::CheckDevice(device.empty() ? "cpu" : device, "spec.device"));
  run_.device = torch::Device(device.empty() ? "cpu" : device);
  if (spec_.precision == "fp16") {
    if (!run_.device.is_cuda()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "spec.precision: fp16 needs a CUDA device; this job runs on ", run_.device.str(),
          " (use bf16 on a CPU)"));
    }
    loss_scaler_ = std::make_unique<internal::LossScaler>();
  }
  if (options_.eval_scheduler != nullptr &&
      torch::Device(options_.eval_device.empty() ? "cpu" : options_.eval_device) == run_.device) {
    run_.eval_scheduler = options_.eval_scheduler;
  }
  run_.model_store = options_.model_store;
  ASSIGN_OR_RETURN(run_.run_dir,
                   common::ResolveUnderRoot(options_.data_dir, "runs/" + job_.id, "job_id"));
  RETURN_IF_ERROR(common::MakeDirectories(run_.run_dir));
  RemoveTemporaries(run_.run_dir);
  if (options_.run_checkpoints != nullptr && job_.last_completed_epoch > 0) {
    // Another trainer ran the earlier epochs: their checkpoints come from the database.
    RETURN_IF_ERROR(options_.run_checkpoints->Restore(job_.id, run_.run_dir));
  }
  ASSIGN_OR_RETURN(std::string ds_dir, ResolveDatasetDir(options_.data_dir, spec_.dataset,
                                                         "spec.dataset", options_.datasets));
  data::OpenOptions open;
  open.verify_contents = false;
  ASSIGN_OR_RETURN(data::Dataset ds, data::OpenDataset(ds_dir, open));
  run_.dataset = std::make_shared<const data::Dataset>(std::move(ds));
  if (run_.dataset->train.empty() || run_.dataset->val.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "spec.dataset: data set '", spec_.dataset, "' needs train and val images (has ",
        run_.dataset->train.size(), " and ", run_.dataset->val.size(), ")"));
  }
  return BuildModel();
}

absl::StatusOr<bool> TrainJob::Resume() {
  const std::string latest = run_.run_dir + "/latest.ckpt";
  const std::string best = run_.run_dir + "/best.ckpt";
  std::error_code ec;
  if (!std::filesystem::exists(latest, ec)) {
    if (job_.last_completed_epoch > 0) {
      return absl::DataLossError(absl::StrCat("runs/", job_.id,
                                              "/latest.ckpt is missing; cannot resume after epoch ",
                                              job_.last_completed_epoch));
    }
    return false;
  }
  absl::StatusOr<model::LoadedCheckpoint> ckpt = model::LoadCheckpoint(latest);
  if (ckpt.ok()) {
    state_ = StateFromJson(ckpt->info.metadata);
    if (state_.epoch < job_.last_completed_epoch) {
      return absl::DataLossError(absl::StrCat("runs/", job_.id, "/latest.ckpt holds epoch ",
                                              state_.epoch, " but epoch ",
                                              job_.last_completed_epoch, " was completed"));
    }
  } else {
    // A damaged checkpoint (checksum mismatch, truncation) is never trained on: fall back
    // to best.ckpt, an earlier complete state, or else to epoch 0. The damaged files are
    // kept for whoever investigates, not deleted.
    if (ckpt.status().code() != absl::StatusCode::kDataLoss) return ckpt.status();
    RETURN_IF_ERROR(SetAside(latest));
    std::string note = absl::StrCat("runs/", job_.id, "/latest.ckpt is damaged (",
                                    ckpt.status().message(), "); kept as latest.ckpt.damaged");
    ckpt = std::filesystem::exists(best, ec) ? model::LoadCheckpoint(best)
                                             : absl::NotFoundError("best.ckpt");
    if (!ckpt.ok()) {
      if (ckpt.status().code() == absl::StatusCode::kDataLoss) {
        RETURN_IF_ERROR(SetAside(best));
        absl::StrAppend(&note, "; best.ckpt is damaged too (kept as best.ckpt.damaged)");
      } else if (ckpt.status().code() != absl::StatusCode::kNotFound) {
        return ckpt.status();
      }
      ctx_.Note(absl::StrCat(note, "; training restarts from epoch 0"));
      return false;
    }
    state_ = StateFromJson(ckpt->info.metadata);
    ctx_.Note(absl::StrCat(note, "; resuming from best.ckpt after epoch ", state_.epoch));
  }
  run_.config = ckpt->info.config;
  run_.model = ckpt->model;
  LOG(INFO) << "training " << job_.id << ": resuming after epoch " << state_.epoch;
  return true;
}

absl::Status TrainJob::BuildModel() {
  ASSIGN_OR_RETURN(const bool resumed, Resume());
  if (!resumed) {
    state_ = RunState{};
    const data::Dataset& ds = *run_.dataset;
    ASSIGN_OR_RETURN(run_.config.encoder, model::ParseEncoderKind(spec_.encoder));
    run_.config.skip_prune_level = spec_.prune_level;
    run_.config.in_channels = ds.channels;
    run_.config.classes =
        std::max(model::kMinClasses, ds.classes.empty() ? 0 : ds.classes.back().id + 1);
    ASSIGN_OR_RETURN(data::Normalization norm, data::ComputeNormalization(ds, data::Split::kTrain));
    run_.config.mean = norm.mean;
    run_.config.std = norm.std;
    RETURN_IF_ERROR(model::Validate(run_.config));
    {
      std::lock_guard<std::mutex> lock(internal::InitMutex());
      torch::manual_seed(spec_.seed);
      run_.model = model::Unet(run_.config);
    }
    if (!spec_.pretrained_encoder.empty()) {
      ASSIGN_OR_RETURN(std::string path,
                       common::ResolveUnderRoot(options_.data_dir, spec_.pretrained_encoder,
                                                "spec.pretrained_encoder"));
      RETURN_IF_ERROR(model::LoadTorchvisionEncoderFile(run_.model, path).status());
    }
  }
  run_.model->to(run_.device);
  if (run_.channels_last) internal::ToChannelsLast(run_.model);
  run_.model->train();
  optimizer_ = std::make_unique<torch::optim::Adam>(run_.model->parameters(),
                                                    torch::optim::AdamOptions(spec_.learning_rate));
  if (state_.epoch > 0 &&
      !LoadOptimizer(run_.run_dir + "/latest.optim", *optimizer_, state_.epoch)) {
    LOG(WARNING) << "training " << job_.id << ": no optimizer state for epoch " << state_.epoch
                 << "; Adam moments restart from zero";
  }

  data::LoaderOptions lo;
  lo.split = data::Split::kTrain;
  lo.batch_size = spec_.batch_size;
  lo.shuffle = true;
  // A last batch of one image gives BatchNorm a degenerate batch; drop partial batches.
  lo.drop_last = static_cast<int>(run_.dataset->train.size()) >= spec_.batch_size;
  lo.seed = spec_.seed;
  lo.augment.crop_height = lo.augment.crop_width = spec_.crop_size;
  lo.augment.random_crop = spec_.random_crop;
  lo.augment.flips = spec_.flips;
  lo.augment.rotate90 = spec_.rot90;
  lo.augment.color = spec_.color;
  lo.normalization = {run_.config.mean, run_.config.std};
  lo.workers = options_.loader_workers;
  ASSIGN_OR_RETURN(train_loader_, data::Loader::Create(run_.dataset, lo));
  ASSIGN_OR_RETURN(val_loader_, MakeEvalLoader(run_, run_.dataset, data::Split::kVal, {}));
  steps_per_epoch_ = train_loader_->num_batches();
  if (spec_.max_steps_per_epoch > 0) {
    steps_per_epoch_ = std::min<int64_t>(steps_per_epoch_, spec_.max_steps_per_epoch);
  }
  return absl::OkStatus();
}

void TrainJob::Report(int epoch, int64_t step, double loss) {
  scheduler::JobProgress p;
  p.epoch = epoch;
  p.epochs = spec_.epochs;
  p.step = step;
  p.steps = steps_per_epoch_;
  p.loss = loss;
  p.val_iou = last_val_iou_;
  p.best_val_iou = std::max(0.0, state_.best_val_iou);
  p.images_per_second = train_seconds_ > 0 ? images_done_ / train_seconds_ : 0;
  const double done = (epoch - 1) * static_cast<double>(steps_per_epoch_) + step;
  const double total = static_cast<double>(spec_.epochs) * steps_per_epoch_;
  p.fraction = total > 0 ? std::min(1.0, done / total) : 0;
  if (steps_done_ > 0) {
    const double per_step = train_seconds_ / steps_done_;
    const double per_eval = evals_done_ > 0 ? eval_seconds_ / evals_done_ : 0;
    p.eta_seconds = (total - done) * per_step + (spec_.epochs - epoch + 1) * per_eval;
  }
  ctx_.ReportProgress(p);
}

absl::Status TrainJob::TrainEpoch(int epoch) {
  run_.model->train();
  train_loader_->StartEpoch(epoch);
  double loss_sum = 0;
  int64_t step = 0;
  double epoch_train_seconds = 0, epoch_loader_wait = 0;  // this epoch's steps, and their wait
  Report(epoch, 0, 0);
  while (step < steps_per_epoch_) {
    if (cancelled()) return absl::CancelledError("training cancelled");
    const auto t0 = Clock::now();
    ASSIGN_OR_RETURN(std::optional<data::Batch> batch, train_loader_->Next());
    if (!batch) break;
    const double waited = Seconds(Clock::now() - t0);
    const torch::Tensor x = internal::BatchImages(*batch, run_.device, run_.channels_last);
    const torch::Tensor y = internal::BatchMasks(*batch, run_.device);
    torch::Tensor loss =
        internal::TrainStep(run_.model, *optimizer_, x, y, spec_.ce_weight, spec_.dice_weight,
                            spec_.precision, loss_scaler_.get());
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "training diverged (loss ", value, ") in epoch ", epoch, "; lower spec.learning_rate"));
    }
    loss_sum += value;
    ++step;
    ++steps_done_;
    images_done_ += batch->n;
    const double step_seconds = Seconds(Clock::now() - t0);
    train_seconds_ += step_seconds;
    epoch_train_seconds += step_seconds;
    epoch_loader_wait += waited;
    ctx_.AddTrainingImages(batch->n);
    ctx_.AddTrainingStepTime(step_seconds, waited);
    Report(epoch, step, loss_sum / step);
  }
  const double train_loss = step > 0 ? loss_sum / step : 0;

  const auto t0 = Clock::now();
  ASSIGN_OR_RETURN(ConfusionMatrix val,
                   internal::Evaluate(run_, run_.model, *val_loader_,
                                      [this] { return cancelled(); }));
  const double val_seconds = Seconds(Clock::now() - t0);
  eval_seconds_ += val_seconds;
  ++evals_done_;
  return EndEpoch(epoch, train_loss, val,
                  {{"train_seconds", epoch_train_seconds},
                   {"loader_wait_seconds", epoch_loader_wait},
                   {"val_seconds", val_seconds}});
}

absl::Status TrainJob::EndEpoch(int epoch, double train_loss, const ConfusionMatrix& val,
                                const json& timing) {
  last_val_iou_ = val.MeanForegroundIoU();
  json per_class = json::object();
  for (int c = 0; c < val.classes(); ++c) per_class[ClassName(run_, c)] = val.ClassIoU(c);
  state_.epoch = epoch;
  json entry = {{"epoch", epoch},
                {"train_loss", train_loss},
                {"val_iou", last_val_iou_},
                {"val_class_iou", per_class}};
  entry.update(timing);
  state_.history.push_back(std::move(entry));
  const auto t0 = Clock::now();
  // Fencing on a shared store: a run that lost its lease (paused past it; the job now runs
  // elsewhere) must not overwrite the new attempt's checkpoints.
  RETURN_IF_ERROR(ctx_.CheckLease());
  // The best checkpoint is written before latest: a crash in between re-runs this epoch,
  // which (deterministically) rewrites the same best.
  std::vector<std::string> written = {"latest.optim", "latest.ckpt"};
  if (last_val_iou_ > state_.best_val_iou) {
    state_.best_val_iou = last_val_iou_;
    state_.best_epoch = epoch;
    state_.since_improvement = 0;
    RETURN_IF_ERROR(
        model::SaveCheckpoint(run_.run_dir + "/best.ckpt", run_.model, StateJson(state_, spec_)));
    written.insert(written.begin(), "best.ckpt");
  } else {
    ++state_.since_improvement;
  }
  RETURN_IF_ERROR(SaveOptimizer(run_.run_dir + "/latest.optim", *optimizer_, epoch));
  RETURN_IF_ERROR(
      model::SaveCheckpoint(run_.run_dir + "/latest.ckpt", run_.model, StateJson(state_, spec_)));
  if (options_.run_checkpoints != nullptr) {
    // Fenced: Aborted (nothing saved) once another attempt holds the job.
    RETURN_IF_ERROR(options_.run_checkpoints->Save(job_.id, job_.attempt, run_.run_dir, written));
  }
  RETURN_IF_ERROR(ctx_.MarkEpochCompleted(epoch));
  LOG(INFO) << "training " << job_.id << ": epoch " << epoch << "/" << spec_.epochs << " loss "
            << train_loss << " val_iou " << last_val_iou_ << " best " << state_.best_val_iou
            << " (epoch " << state_.best_epoch << "); train " << train_seconds_ << " s, val "
            << eval_seconds_ << " s, checkpoints " << Seconds(Clock::now() - t0)
            << " s so far; this epoch's steps waited " << timing.value("loader_wait_seconds", 0.0)
            << " of " << timing.value("train_seconds", 0.0) << " s on the data loader";
  Report(epoch, steps_per_epoch_, train_loss);
  return absl::OkStatus();
}

absl::Status TrainJob::Run() {
  RETURN_IF_ERROR(SetUp());
  const bool patience_spent = spec_.early_stopping_patience > 0 &&
                              state_.since_improvement >= spec_.early_stopping_patience;
  if (state_.epoch >= spec_.epochs || patience_spent) {
    if (auto done = ReadRegistration(run_); done.ok()) {
      ctx_.SetResult(*done);  // registered before an interruption: do not register twice
      ForgetSavedCheckpoints();
      return absl::OkStatus();
    }
  }
  bool stopped_early = false;
  for (int epoch = state_.epoch + 1; epoch <= spec_.epochs; ++epoch) {
    if (spec_.early_stopping_patience > 0 &&
        state_.since_improvement >= spec_.early_stopping_patience) {
      stopped_early = true;
      LOG(INFO) << "training " << job_.id << ": early stop after epoch " << state_.epoch;
      break;
    }
    RETURN_IF_ERROR(TrainEpoch(epoch));
  }
  if (cancelled()) return absl::CancelledError("training cancelled");
  FinishInfo info;
  info.epochs_run = state_.epoch;
  info.best_epoch = state_.best_epoch;
  info.stopped_early = stopped_early;
  info.history = state_.history;
  ASSIGN_OR_RETURN(std::string result,
                   FinishTraining(run_, info, options_.on_registered,
                                  [this] { return cancelled(); }, [this] { return ctx_.CheckLease(); }));
  ctx_.SetResult(std::move(result));
  ForgetSavedCheckpoints();
  return absl::OkStatus();
}

void TrainJob::ForgetSavedCheckpoints() {
  if (options_.run_checkpoints == nullptr) return;
  // The model is registered: no other trainer needs the checkpoints (the local copies
  // follow --keep_run_checkpoints). A failure leaves them for `segctl jobs purge`.
  if (absl::Status removed = options_.run_checkpoints->Remove(job_.id); !removed.ok()) {
    LOG(WARNING) << "training " << job_.id << ": saved checkpoints not removed: " << removed;
  }
}

}  // namespace

absl::Status TrainingRunner::Run(const scheduler::Job& job, scheduler::JobContext& ctx) {
  absl::Status status = [&] {
    const model::TensorHeapHold hold;  // no idle release under the running steps
    TrainJob train(options_, job, ctx);
    return model::CallTorch("training", [&]() -> absl::Status { return train.Run(); });
  }();
  // The job's model, optimiser state and activations are freed now; the heap that held them
  // is kept for reuse while a job runs (tensor_memory.h) and given back once it is over.
  model::ReleaseTensorMemory();
  return status;
}

}  // namespace segserve::training
