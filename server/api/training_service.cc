#include "server/api/training_service.h"

#include <mutex>

#include "absl/strings/str_cat.h"
#include "server/api/failed_reactors.h"
#include "server/api/job_converters.h"
#include "server/api/pool_call.h"
#include "server/api/request_id.h"
#include "server/api/status_mapping.h"
#include "server/api/train_spec_converter.h"

namespace segserve::api {
namespace {

absl::Status CheckJobId(const v1::JobRef& ref) {
  if (ref.job_id().empty()) return absl::InvalidArgumentError("job_id: required");
  if (ref.job_id().size() > 128) return absl::InvalidArgumentError("job_id: at most 128 bytes");
  return absl::OkStatus();
}

// Streams a job's events. The subscription's notify hook only touches `State` (shared),
// so a late notification after OnDone finds alive == false.
class WatchReactor final : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  WatchReactor(std::unique_ptr<scheduler::Subscription> subscription,
               std::unique_ptr<StreamSlot> slot)
      : subscription_(std::move(subscription)),
        slot_(std::move(slot)),
        state_(std::make_shared<State>()) {
    state_->reactor = this;
    auto state = state_;
    subscription_->SetNotify([state] {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->alive) state->reactor->Pump();
    });
    Pump();
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
    if (!writing_) FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
    cancelled_ = true;
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->alive = false;
    }
    subscription_->Close();
    delete this;
  }

 private:
  struct State {
    std::mutex mu;
    WatchReactor* reactor = nullptr;
    bool alive = true;
  };

  void Pump() {
    std::lock_guard<std::mutex> lock(mu_);
    PumpLocked();
  }

  void PumpLocked() {
    if (writing_ || finished_) return;
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

  std::unique_ptr<scheduler::Subscription> subscription_;
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
  }
}

TrainingService::TrainingService(scheduler::Scheduler& scheduler, std::string data_dir,
                                 AccessControl& access, lifecycle::RunRetention* retention,
                                 common::ThreadPool* control_pool)
    : scheduler_(scheduler),
      data_dir_(std::move(data_dir)),
      access_(access),
      retention_(retention),
      control_pool_(control_pool) {}

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
  auto specs = TrainSpecsFromProto(*request, data_dir_);
  if (!specs.ok()) return FinishUnary(context, specs.status());
  if (request->priority() < -100 || request->priority() > 100) {
    return FinishUnary(context, absl::InvalidArgumentError("priority: must be -100..100"));
  }
  absl::StatusOr<scheduler::Job> job;
  if (specs->children.size() == 1) {
    job = scheduler_.Submit(scheduler::JobKind::kTrain, specs->children.front(),
                            request->priority());
  } else {
    job = scheduler_.SubmitSweep(specs->parent, specs->children, request->priority());
  }
  if (job.ok()) ExportJob(*job, response);
  return FinishUnary(context, job.status());
}

grpc::ServerUnaryReactor* TrainingService::GetJob(grpc::CallbackServerContext* context,
                                                  const v1::JobRef* request, v1::Job* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = CheckJobId(*request); !s.ok()) return FinishUnary(context, s);
  auto job = scheduler_.Get(request->job_id());
  if (job.ok()) ExportJob(*job, response);
  return FinishUnary(context, job.status());
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
    if (request->kind() < v1::JOB_KIND_TRAIN || request->kind() > v1::JOB_KIND_SYNTH) {
      return FinishUnary(context, absl::InvalidArgumentError("kind: unknown job kind"));
    }
    filter.kind = static_cast<scheduler::JobKind>(static_cast<int>(request->kind()));
  }
  auto jobs = scheduler_.List(filter);
  if (jobs.ok()) {
    for (const auto& job : *jobs) ExportJob(job, response->add_jobs());
  }
  return FinishUnary(context, jobs.status());
}

grpc::ServerUnaryReactor* TrainingService::CancelJob(grpc::CallbackServerContext* context,
                                                     const v1::JobRef* request,
                                                     v1::Job* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kTrainer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = CheckJobId(*request); !s.ok()) return FinishUnary(context, s);
  auto job = scheduler_.Cancel(request->job_id());
  if (job.ok()) ExportJob(*job, response);
  return FinishUnary(context, job.status());
}

grpc::ServerWriteReactor<v1::JobEvent>* TrainingService::WatchJob(
    grpc::CallbackServerContext* context, const v1::JobRef* request) {
  auto caller = access_.Authorize(*context, auth::Role::kViewer);
  if (!caller.ok()) return new FailedWatch(ToGrpcStatus(caller.status(), RequestId(*context)));
  if (absl::Status s = CheckJobId(*request); !s.ok()) {
    return new FailedWatch(ToGrpcStatus(s, RequestId(*context)));
  }
  auto subscription = scheduler_.Watch(request->job_id());
  if (!subscription.ok()) {
    return new FailedWatch(ToGrpcStatus(subscription.status(), RequestId(*context)));
  }
  auto slot = access_.OpenStream(*caller);
  if (!slot.ok()) return new FailedWatch(ToGrpcStatus(slot.status(), RequestId(*context)));
  return new WatchReactor(std::move(*subscription), std::move(*slot));
}

}  // namespace segserve::api
