#include "server/api/training_service.h"

#include <mutex>

#include "absl/strings/str_cat.h"
#include "server/api/experiment_converter.h"
#include "server/api/failed_reactors.h"
#include "server/api/job_converters.h"
#include "server/api/pool_call.h"
#include "server/api/request_id.h"
#include "server/api/status_mapping.h"
#include "server/api/train_spec_converter.h"
#include "server/common/status_macros.h"
#include "server/data/dataset_index.h"

namespace segserve::api {
namespace {

absl::Status CheckJobId(const v1::JobRef& ref) {
  if (ref.job_id().empty()) return absl::InvalidArgumentError("job_id: required");
  if (ref.job_id().size() > 128) return absl::InvalidArgumentError("job_id: at most 128 bytes");
  return absl::OkStatus();
}

// Streams a job's events. The first read of the job (the job store) runs on the store
// pool, which hands the subscription over with Attach; until then the reactor writes
// nothing and finishes only through Attach or Fail (a cancel is remembered), so the pool
// task never meets a deleted reactor. Threads other than gRPC's reactions (the pool, the
// subscription's notify hook) reach the reactor only through `State`, under its mutex and
// while `alive`; OnDone takes that mutex before deleting.
class WatchReactor final : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  struct State {
    std::mutex mu;
    WatchReactor* reactor = nullptr;
    bool alive = true;
  };

  explicit WatchReactor(std::unique_ptr<StreamSlot> slot)
      : slot_(std::move(slot)), state_(std::make_shared<State>()) {
    state_->reactor = this;
  }

  const std::shared_ptr<State>& state() const { return state_; }

  // With state()->mu held, once: the job store's answer is in. The caller then sets the
  // subscription's notify hook (outside that mutex: the hook takes it).
  void Attach(std::shared_ptr<scheduler::Subscription> subscription) {
    std::lock_guard<std::mutex> lock(mu_);
    subscription_ = std::move(subscription);
    PumpLocked();
  }
  // With state()->mu held, instead of Attach.
  void Fail(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    FinishLocked(status);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watcher went away"));
      return;
    }
    if (last_written_) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    // Before Attach the store pool still holds this call: Attach finishes it.
    if (subscription_ != nullptr && !writing_) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
    }
    cancelled_ = true;
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->alive = false;
    }
    if (subscription_ != nullptr) subscription_->Close();
    delete this;
  }

  void Pump() {
    std::lock_guard<std::mutex> lock(mu_);
    PumpLocked();
  }

 private:
  void PumpLocked() {
    if (writing_ || finished_ || subscription_ == nullptr) return;
    if (cancelled_) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      return;
    }
    std::optional<scheduler::JobEvent> event = subscription_->TryNext();
    if (!event.has_value()) {
      if (subscription_->done()) {
        FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                  "server is shutting down; watch again after it restarts"));
      }
      return;
    }
    outgoing_.Clear();
    JobEventToProto(*event, &outgoing_);
    ExportJob(event->job, outgoing_.mutable_job());
    last_written_ = event->terminal;
    writing_ = true;
    StartWrite(&outgoing_);
  }

  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  // Shared with the store-pool task that attached it, which sets its notify hook after
  // the reactor may already be gone.
  std::shared_ptr<scheduler::Subscription> subscription_;
  std::unique_ptr<StreamSlot> slot_;  // counts against the client's stream limit
  std::shared_ptr<State> state_;
  std::mutex mu_;
  v1::JobEvent outgoing_;
  bool writing_ = false;
  bool last_written_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
};

using FailedWatch = FailedWriteReactor<v1::JobEvent>;

}  // namespace

void ExportJob(const scheduler::Job& job, v1::Job* out) {
  out->Clear();
  JobToProto(job, out);
  if (job.kind == scheduler::JobKind::kTrain || job.kind == scheduler::JobKind::kSweep) {
    TrainSpecToProto(job.spec_json, out->mutable_train_spec());
  } else if (job.kind == scheduler::JobKind::kExperiment) {
    ExperimentSpecToProto(job.spec_json, out->mutable_experiment_spec());
  }
}

TrainingService::TrainingService(scheduler::Scheduler& scheduler, std::string data_dir,
                                 AccessControl& access, common::ThreadPool& store_pool,
                                 lifecycle::RunRetention* retention,
                                 common::ThreadPool* control_pool, data::DatasetIndex* datasets)
    : scheduler_(scheduler),
      data_dir_(std::move(data_dir)),
      access_(access),
      store_pool_(store_pool),
      retention_(retention),
      control_pool_(control_pool),
      datasets_(datasets) {}

grpc::ServerUnaryReactor* TrainingService::PurgeJobs(grpc::CallbackServerContext* context,
                                                     const v1::PurgeJobsRequest* request,
                                                     v1::PurgeJobsResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kAdmin); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (request->older_than_seconds() < 0) {
    return FinishUnary(
        context, absl::InvalidArgumentError(absl::StrCat("older_than_seconds: must be >= 0, got ",
                                                         request->older_than_seconds())));
  }
  if (retention_ == nullptr || control_pool_ == nullptr) {
    return FinishUnary(context, absl::UnimplementedError("this server does not purge jobs"));
  }
  if (absl::Status s = scheduler_.availability(); !s.ok()) return FinishUnary(context, s);
  const std::chrono::seconds older_than(request->older_than_seconds());
  // Removing run directories takes long: the control pool, not the store pool that job
  // submissions wait on.
  return RunUnaryOnPool(context, *control_pool_, [this, older_than, response]() -> absl::Status {
    absl::StatusOr<lifecycle::PurgeResult> purged = retention_->Purge(older_than);
    if (!purged.ok()) return purged.status();
    for (const scheduler::Job& job : purged->jobs) response->add_job_ids(job.id);
    response->set_freed_bytes(purged->freed_bytes);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* TrainingService::SubmitTrain(grpc::CallbackServerContext* context,
                                                       const v1::TrainSpec* request,
                                                       v1::Job* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kTrainer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (request->priority() < -100 || request->priority() > 100) {
    return FinishUnary(context, absl::InvalidArgumentError("priority: must be -100..100"));
  }
  // Validating the spec looks up its data set and files; submitting commits to SQLite.
  return RunUnaryOnPool(
      context, store_pool_,
      [this, request, response]() -> absl::Status {
        ASSIGN_OR_RETURN(RunnerSpecs specs, TrainSpecsFromProto(*request, data_dir_, datasets_));
        absl::StatusOr<scheduler::Job> job;
        if (specs.children.size() == 1) {
          job = scheduler_.Submit(scheduler::JobKind::kTrain, specs.children.front(),
                                  request->priority());
        } else {
          job = scheduler_.SubmitSweep(specs.parent, specs.children, request->priority());
        }
        if (!job.ok()) return job.status();
        ExportJob(*job, response);
        return absl::OkStatus();
      },
      kStorePoolBusy);
}

grpc::ServerUnaryReactor* TrainingService::SubmitExperiment(grpc::CallbackServerContext* context,
                                                            const v1::ExperimentSpec* request,
                                                            v1::Job* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kTrainer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = scheduler_.availability(); !s.ok()) return FinishUnary(context, s);
  // As SubmitTrain: validation looks up the data set and files; submitting commits to SQLite.
  return RunUnaryOnPool(
      context, store_pool_,
      [this, request, response]() -> absl::Status {
        ASSIGN_OR_RETURN(ExperimentSpecs specs,
                         ExperimentSpecsFromProto(*request, data_dir_,
                                                  scheduler_.options().max_queued_jobs, datasets_));
        ASSIGN_OR_RETURN(scheduler::Job job,
                         scheduler_.SubmitParent(scheduler::JobKind::kExperiment, specs.parent,
                                                 specs.children, request->priority()));
        ExportJob(job, response);
        return absl::OkStatus();
      },
      kStorePoolBusy);
}

grpc::ServerUnaryReactor* TrainingService::GetJob(grpc::CallbackServerContext* context,
                                                  const v1::JobRef* request, v1::Job* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = CheckJobId(*request); !s.ok()) return FinishUnary(context, s);
  return RunUnaryOnPool(
      context, store_pool_,
      [this, request, response]() -> absl::Status {
        ASSIGN_OR_RETURN(scheduler::Job job, scheduler_.Get(request->job_id()));
        ExportJob(job, response);
        return absl::OkStatus();
      },
      kStorePoolBusy);
}

grpc::ServerUnaryReactor* TrainingService::ListJobs(grpc::CallbackServerContext* context,
                                                    const v1::ListJobsRequest* request,
                                                    v1::ListJobsResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (request->page_size() < 0 || request->page_size() > 1000) {
    return FinishUnary(context, absl::InvalidArgumentError("page_size: must be 0..1000"));
  }
  scheduler::JobFilter filter;
  filter.limit = request->page_size() == 0 ? 100 : request->page_size();
  for (int state : request->states()) {
    auto parsed = StateFromProto(static_cast<v1::JobState>(state));
    if (!parsed.ok()) return FinishUnary(context, parsed.status());
    filter.states.push_back(*parsed);
  }
  if (request->kind() != v1::JOB_KIND_UNSPECIFIED) {
    if (request->kind() < v1::JOB_KIND_TRAIN || request->kind() > v1::JOB_KIND_EXPERIMENT) {
      return FinishUnary(context, absl::InvalidArgumentError("kind: unknown job kind"));
    }
    filter.kind = static_cast<scheduler::JobKind>(static_cast<int>(request->kind()));
  }
  return RunUnaryOnPool(
      context, store_pool_,
      [this, filter, response]() -> absl::Status {
        ASSIGN_OR_RETURN(std::vector<scheduler::Job> jobs, scheduler_.List(filter));
        for (const auto& job : jobs) ExportJob(job, response->add_jobs());
        return absl::OkStatus();
      },
      kStorePoolBusy);
}

grpc::ServerUnaryReactor* TrainingService::CancelJob(grpc::CallbackServerContext* context,
                                                     const v1::JobRef* request, v1::Job* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kTrainer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = CheckJobId(*request); !s.ok()) return FinishUnary(context, s);
  return RunUnaryOnPool(
      context, store_pool_,
      [this, request, response]() -> absl::Status {
        ASSIGN_OR_RETURN(scheduler::Job job, scheduler_.Cancel(request->job_id()));
        ExportJob(job, response);
        return absl::OkStatus();
      },
      kStorePoolBusy);
}

grpc::ServerWriteReactor<v1::JobEvent>* TrainingService::WatchJob(
    grpc::CallbackServerContext* context, const v1::JobRef* request) {
  auto caller = access_.Authorize(*context, auth::Role::kViewer);
  const std::string request_id = RequestId(*context);
  if (!caller.ok()) return new FailedWatch(ToGrpcStatus(caller.status(), request_id));
  if (absl::Status s = CheckJobId(*request); !s.ok()) {
    return new FailedWatch(ToGrpcStatus(s, request_id));
  }
  if (absl::Status s = scheduler_.availability(); !s.ok()) {
    return new FailedWatch(ToGrpcStatus(s, request_id));
  }
  auto slot = access_.OpenStream(*caller);
  if (!slot.ok()) return new FailedWatch(ToGrpcStatus(slot.status(), request_id));
  auto* reactor = new WatchReactor(std::move(*slot));
  std::shared_ptr<WatchReactor::State> state = reactor->state();
  // The job's first snapshot is read from the job store: on the store pool.
  const bool scheduled = store_pool_.TrySchedule([this, state, id = request->job_id(), request_id] {
    absl::StatusOr<std::unique_ptr<scheduler::Subscription>> watched = scheduler_.Watch(id);
    std::shared_ptr<scheduler::Subscription> subscription;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      if (!state->alive) return;
      if (!watched.ok()) {
        state->reactor->Fail(ToGrpcStatus(watched.status(), request_id));
        return;
      }
      subscription = std::move(*watched);
      state->reactor->Attach(subscription);
    }
    subscription->SetNotify([state] {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->alive) state->reactor->Pump();
    });
  });
  if (!scheduled) {
    std::lock_guard<std::mutex> lock(state->mu);
    reactor->Fail(ToGrpcStatus(absl::ResourceExhaustedError(kStorePoolBusy), request_id));
  }
  return reactor;
}

}  // namespace segserve::api
