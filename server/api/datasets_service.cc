#include "server/api/datasets_service.h"

#include <atomic>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/api/failed_reactors.h"
#include "server/api/job_converters.h"
#include "server/api/pool_call.h"
#include "server/api/request_id.h"
#include "server/api/status_mapping.h"
#include "server/common/status_macros.h"
#include "server/data/dataset.h"
#include "server/lifecycle/datasets.h"
#include "server/registry/model_store.h"

namespace segserve::api {
namespace {

const char* ShiftKindName(v1::Shift::Kind kind) {
  switch (kind) {
    case v1::Shift::KIND_BRIGHTNESS: return "brightness";
    case v1::Shift::KIND_CONTRAST: return "contrast";
    case v1::Shift::KIND_SATURATION: return "saturation";
    default: return "";
  }
}

void FillInfo(const data::DatasetEntry& entry, v1::DatasetInfo* info) {
  info->set_name(entry.name);
  info->set_images(entry.images);
  info->set_channels(entry.channels);
  for (const auto& name : entry.class_names) info->add_class_names(name);
  (*info->mutable_splits())["train"] = entry.train;
  (*info->mutable_splits())["val"] = entry.val;
  (*info->mutable_splits())["test"] = entry.test;
  info->set_disk_bytes(entry.disk_bytes);
}

// Datasets.Upload. gRPC threads only start tasks: every received message is handled by a
// task on the upload pool (file writes, the final validation and publishing), and the next
// read starts when that task is done, so one message per stream is in memory and at most
// one task per stream exists. The members are touched by one task or reaction at a time
// (each hands over to the next through gRPC or the pool's queue), so they need no lock;
// `cancelled_` is the exception, set by OnCancel at any time.
class UploadReactor final : public grpc::ServerReadReactor<v1::UploadDatasetChunk> {
 public:
  UploadReactor(grpc::CallbackServerContext* context, data::DatasetUploads& uploads,
                data::DatasetIndex& index, common::ThreadPool& pool, std::unique_ptr<StreamSlot> slot,
                v1::DatasetInfo* response, const std::function<void()>& on_change)
      : context_(context),
        uploads_(uploads),
        index_(index),
        pool_(pool),
        slot_(std::move(slot)),
        response_(response),
        on_change_(on_change),
        request_id_(RequestId(*context)) {
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (pool_.TrySchedule([this, ok] { ok ? Consume() : EndOfStream(); })) return;
    // No task may run: the staging directory stays for the next attempt with this id (or
    // the next start) to remove, rather than being removed on this gRPC thread.
    if (attempt_) attempt_->Abandon();
    attempt_.reset();
    Finish(ToGrpcStatus(absl::ResourceExhaustedError("too many uploads queued; retry later"),
                        request_id_));
  }

  void OnCancel() override { cancelled_.store(true); }
  void OnDone() override { delete this; }

 private:
  // On the pool: one message.
  void Consume() {
    if (cancelled_.load()) return Done(absl::CancelledError("upload cancelled"));
    if (attempt_ == nullptr) {
      if (!incoming_.has_header()) {
        return Done(absl::InvalidArgumentError("the first message must be the header"));
      }
      absl::StatusOr<data::UploadHeader> header = HeaderFromProto(incoming_.header());
      if (!header.ok()) return Done(header.status());
      if (absl::Status held = FetchIfPublishedElsewhere(*header); !held.ok()) return Done(held);
      absl::StatusOr<data::DatasetUploads::Begun> begun = uploads_.Begin(*std::move(header));
      if (!begun.ok()) return Done(begun.status());
      if (begun->published.has_value()) {  // a retry of an upload that succeeded
        // Recorded again: the first attempt may have died between its rename and Record.
        return Done(RecordPublished(*begun->published));
      }
      attempt_ = std::move(begun->attempt);
    } else {
      if (!incoming_.has_file()) {
        return Done(absl::InvalidArgumentError("only the first message may be a header"));
      }
      const v1::UploadFileChunk& file = incoming_.file();
      absl::Status written = attempt_->Write(file.path(), file.offset(), file.data(), file.last());
      if (!written.ok()) return Done(written);
    }
    incoming_.Clear();
    StartRead(&incoming_);  // last: the next OnReadDone may run at once, on another thread
  }

  // On the pool: the client closed its side (or went away).
  void EndOfStream() {
    if (cancelled_.load() || context_->IsCancelled()) {
      return Done(absl::CancelledError("upload cancelled"));
    }
    if (attempt_ == nullptr) {
      return Done(absl::InvalidArgumentError("the stream ended before the header"));
    }
    absl::StatusOr<data::Dataset> published = attempt_->Publish();
    if (!published.ok()) return Done(published.status());
    absl::Status recorded = RecordPublished(*published);
    if (recorded.ok() && on_change_) on_change_();
    Done(recorded);
  }

  // A name the index holds but this replica's folder lacks (its files are in the database,
  // published through another replica): a retry of that upload gets this replica a copy, so
  // Begin answers with the published set; another upload is refused.
  absl::Status FetchIfPublishedElsewhere(const data::UploadHeader& header) {
    // A bad name is Begin's to refuse, with its own message.
    if (!data::DatasetIndex::CheckName(header.name, "header.name").ok()) return absl::OkStatus();
    // Contains also drops this replica's copy of a set deleted through another one.
    ASSIGN_OR_RETURN(bool taken, index_.Contains(header.name));
    if (!taken) return absl::OkStatus();
    std::error_code ec;
    if (std::filesystem::exists(index_.datasets_dir() + "/" + header.name, ec)) {
      return absl::OkStatus();  // Begin decides
    }
    ASSIGN_OR_RETURN(std::vector<data::DatasetEntry> entries, index_.List());
    for (const data::DatasetEntry& entry : entries) {
      if (entry.name != header.name || entry.upload_id != header.upload_id) continue;
      return index_.LocalDir(header.name, "header.name").status();
    }
    return absl::AlreadyExistsError(
        absl::StrCat("header.name: data set '", header.name, "' already exists"));
  }

  // Tells the index of a published set and answers with its entry. A failure leaves the
  // folder published (the index adopts it on its next Reconcile, and a retry records it).
  absl::Status RecordPublished(const data::Dataset& published) {
    const std::string name = published.root.substr(published.root.rfind('/') + 1);
    const data::DatasetEntry entry = data::EntryOf(name, published);
    RETURN_IF_ERROR(index_.Record(entry));
    FillInfo(entry, response_);
    return absl::OkStatus();
  }

  // Removes what an unpublished attempt staged, then finishes: the last use of `this`.
  void Done(const absl::Status& status) {
    attempt_.reset();
    Finish(ToGrpcStatus(status, request_id_));
  }

  static absl::StatusOr<data::UploadHeader> HeaderFromProto(const v1::UploadDatasetHeader& h) {
    RETURN_IF_ERROR(registry::ValidateModelName(h.name(), "header.name"));
    data::UploadHeader header;
    header.name = h.name();
    switch (h.layout()) {
      case v1::DATASET_LAYOUT_NATIVE:
        header.layout = data::UploadLayout::kNative;
        break;
      case v1::DATASET_LAYOUT_NNUNET:
        header.layout = data::UploadLayout::kNnUnet;
        break;
      default:
        return absl::InvalidArgumentError("header.layout: required (NATIVE or NNUNET)");
    }
    header.upload_id = h.upload_id();
    header.total_bytes = h.total_bytes();
    header.file_count = h.file_count();
    return header;
  }

  grpc::CallbackServerContext* context_;
  data::DatasetUploads& uploads_;
  data::DatasetIndex& index_;
  common::ThreadPool& pool_;
  std::unique_ptr<StreamSlot> slot_;  // counts against the client's stream limit
  v1::DatasetInfo* response_;
  const std::function<void()>& on_change_;
  const std::string request_id_;
  std::atomic<bool> cancelled_{false};
  v1::UploadDatasetChunk incoming_;  // the outstanding read's target
  std::unique_ptr<data::UploadAttempt> attempt_;
};

}  // namespace

DatasetsService::DatasetsService(scheduler::Scheduler& scheduler, data::DatasetIndex& index,
                                 AccessControl& access, common::ThreadPool& store_pool,
                                 common::ThreadPool& control_pool, common::ThreadPool& upload_pool,
                                 data::UploadLimits upload_limits, std::function<void()> on_change)
    : scheduler_(scheduler),
      index_(index),
      access_(access),
      store_pool_(store_pool),
      control_pool_(control_pool),
      upload_pool_(upload_pool),
      uploads_(index.datasets_dir(), upload_limits),
      on_change_(std::move(on_change)) {}

grpc::ServerUnaryReactor* DatasetsService::List(grpc::CallbackServerContext* context,
                                                const v1::ListDatasetsRequest*,
                                                v1::ListDatasetsResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  // Reads the folder and every data set's manifest, or queries the index: the store pool,
  // not this thread.
  return RunUnaryOnPool(
      context, store_pool_,
      [this, response]() -> absl::Status {
        ASSIGN_OR_RETURN(std::vector<data::DatasetEntry> entries, index_.List());
        for (const data::DatasetEntry& entry : entries) FillInfo(entry, response->add_datasets());
        return absl::OkStatus();
      },
      kStorePoolBusy);
}

grpc::ServerUnaryReactor* DatasetsService::Generate(grpc::CallbackServerContext* context,
                                                    const v1::GenerateDatasetRequest* request,
                                                    v1::Job* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kTrainer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = registry::ValidateModelName(request->name(), "name"); !s.ok()) {
    return FinishUnary(context, s);
  }
  const int n = request->n() == 0 ? 500 : request->n();
  const int size = request->size() == 0 ? 256 : request->size();
  if (n < 1 || n > 100000) {
    return FinishUnary(context, absl::InvalidArgumentError(absl::StrCat("n: must be 1..100000, got ", n)));
  }
  if (size < 32 || size > 2048 || size % 32 != 0) {
    return FinishUnary(context, absl::InvalidArgumentError(absl::StrCat(
                                  "size: must be a multiple of 32 in 32..2048, got ", size)));
  }
  if (request->shift().level() < 0 || request->shift().level() > 5) {
    return FinishUnary(context, absl::InvalidArgumentError("shift.level: must be 0..5"));
  }
  nlohmann::json spec = {{"name", request->name()},
                         {"n", n},
                         {"size", size},
                         {"seed", request->seed() == 0 ? 1 : request->seed()}};
  if (request->shift().kind() != v1::Shift::KIND_UNSPECIFIED && request->shift().level() > 0) {
    spec["shift"] = absl::StrCat(ShiftKindName(request->shift().kind()), ":",
                                 request->shift().level());
  }
  // A look at the data-set folder and a job-store commit: the store pool.
  return RunUnaryOnPool(
      context, store_pool_,
      [this, name = request->name(), spec = spec.dump(), response]() -> absl::Status {
        ASSIGN_OR_RETURN(bool taken, index_.Contains(name));
        if (taken) {
          return absl::AlreadyExistsError(
              absl::StrCat("name: data set '", name, "' already exists"));
        }
        absl::StatusOr<scheduler::Job> job = scheduler_.Submit(scheduler::JobKind::kSynth, spec);
        if (!job.ok()) return job.status();
        JobToProto(*job, response);
        return absl::OkStatus();
      },
      kStorePoolBusy);
}

grpc::ServerUnaryReactor* DatasetsService::Delete(grpc::CallbackServerContext* context,
                                                  const v1::DeleteDatasetRequest* request,
                                                  v1::DeleteDatasetResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kAdmin); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = registry::ValidateModelName(request->name(), "name"); !s.ok()) {
    return FinishUnary(context, s);
  }
  const std::string name = request->name();
  return RunUnaryOnPool(context, control_pool_, [this, name, response]() -> absl::Status {
    absl::StatusOr<int64_t> freed = lifecycle::DeleteDataset(index_, name, scheduler_);
    if (!freed.ok()) return freed.status();
    response->set_freed_bytes(*freed);
    if (on_change_) on_change_();
    return absl::OkStatus();
  });
}

grpc::ServerReadReactor<v1::UploadDatasetChunk>* DatasetsService::Upload(
    grpc::CallbackServerContext* context, v1::DatasetInfo* response) {
  using Failed = FailedReadReactor<v1::UploadDatasetChunk>;
  auto caller = access_.Authorize(*context, auth::Role::kAdmin);
  if (!caller.ok()) return new Failed(ToGrpcStatus(caller.status(), RequestId(*context)));
  auto slot = access_.OpenStream(*caller);
  if (!slot.ok()) return new Failed(ToGrpcStatus(slot.status(), RequestId(*context)));
  return new UploadReactor(context, uploads_, index_, upload_pool_, std::move(*slot), response, on_change_);
}

}  // namespace segserve::api
