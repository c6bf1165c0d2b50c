#include "server/api/datasets_service.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/api/job_converters.h"
#include "server/api/pool_call.h"
#include "server/api/request_id.h"
#include "server/api/status_mapping.h"
#include "server/common/dir_util.h"
#include "server/data/dataset.h"
#include "server/lifecycle/datasets.h"
#include "server/registry/model_store.h"

namespace segserve::api {
namespace {
namespace fs = std::filesystem;

const char* ShiftKindName(v1::Shift::Kind kind) {
  switch (kind) {
    case v1::Shift::KIND_BRIGHTNESS: return "brightness";
    case v1::Shift::KIND_CONTRAST: return "contrast";
    case v1::Shift::KIND_SATURATION: return "saturation";
    default: return "";
  }
}

}  // namespace

DatasetsService::DatasetsService(scheduler::Scheduler& scheduler, std::string data_dir,
                                 AccessControl& access, common::ThreadPool& store_pool,
                                 common::ThreadPool& control_pool,
                                 std::function<void()> on_change)
    : scheduler_(scheduler),
      data_dir_(std::move(data_dir)),
      access_(access),
      store_pool_(store_pool),
      control_pool_(control_pool),
      on_change_(std::move(on_change)) {}

grpc::ServerUnaryReactor* DatasetsService::List(grpc::CallbackServerContext* context,
                                                const v1::ListDatasetsRequest*,
                                                v1::ListDatasetsResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  // Reads the folder and every data set's manifest: the store pool, not this thread.
  return RunUnaryOnPool(
      context, store_pool_,
      [this, response]() -> absl::Status {
        std::error_code ec;
        std::vector<std::string> names;
        for (const auto& entry : fs::directory_iterator(data_dir_ + "/datasets", ec)) {
          const std::string name = entry.path().filename().string();
          if (entry.is_directory() && name[0] != '.') names.push_back(name);  // no tombstones
        }
        std::sort(names.begin(), names.end());
        data::OpenOptions options;
        options.verify_contents = false;  // listing reads manifests and headers only
        for (const auto& name : names) {
          auto dataset = data::OpenDataset(data_dir_ + "/datasets/" + name, options);
          if (!dataset.ok()) continue;  // half-written or foreign folders are not listed
          auto* info = response->add_datasets();
          info->set_name(name);
          info->set_images(static_cast<int>(dataset->samples.size()));
          info->set_channels(dataset->channels);
          for (const auto& cls : dataset->classes) info->add_class_names(cls.name);
          (*info->mutable_splits())["train"] = static_cast<int>(dataset->train.size());
          (*info->mutable_splits())["val"] = static_cast<int>(dataset->val.size());
          (*info->mutable_splits())["test"] = static_cast<int>(dataset->test.size());
          info->set_disk_bytes(common::DirectoryBytes(data_dir_ + "/datasets/" + name));
        }
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
        std::error_code ec;
        if (fs::exists(data_dir_ + "/datasets/" + name, ec)) {
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
    absl::StatusOr<int64_t> freed = lifecycle::DeleteDataset(data_dir_, name, scheduler_);
    if (!freed.ok()) return freed.status();
    response->set_freed_bytes(*freed);
    if (on_change_) on_change_();
    return absl::OkStatus();
  });
}

}  // namespace segserve::api
