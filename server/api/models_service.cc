#include "server/api/models_service.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/api/converters.h"
#include "server/api/failed_reactors.h"
#include "server/api/model_transfer_reactors.h"
#include "server/api/request_id.h"
#include "server/api/status_mapping.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/registry/exporter.h"

namespace segserve::api {
namespace {

absl::Status CheckRef(const v1::ModelRef& ref) {
  if (ref.name().empty()) {
    return absl::InvalidArgumentError("model.name: required (a model name or an alias)");
  }
  if (ref.version() < 0) return absl::InvalidArgumentError("model.version: must be >= 0");
  return absl::OkStatus();
}

constexpr const char* kControlPoolBusy = "too many model loads/imports queued; retry later";

}  // namespace

ModelsService::ModelsService(registry::ModelRegistry& registry, common::ThreadPool& control_pool,
                             AccessControl& access, ModelsServiceOptions options)
    : registry_(registry),
      control_pool_(control_pool),
      access_(access),
      options_(std::move(options)) {
  if (options_.incoming_dir.empty()) return;
  if (absl::Status s = common::MakeDirectories(options_.incoming_dir); !s.ok()) {
    LOG(WARNING) << "ImportStream will fail: " << s;
    return;
  }
  // One server per data directory: every model-*.part here is a crashed import's.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.incoming_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kIncomingModelPrefix, 0) != 0) continue;
    LOG(WARNING) << "removing an interrupted import's file " << entry.path().string();
    std::filesystem::remove(entry.path(), ec);
  }
}

absl::Status ModelsService::ImportAndDescribe(const registry::ImportRequest& request, bool load,
                                              v1::ModelInfo* response) {
  absl::StatusOr<registry::StoredVersion> stored =
      registry::ImportStateDict(registry_.store(), request);
  if (stored.ok() && options_.on_change) options_.on_change();
  RETURN_IF_ERROR(stored.status());
  ASSIGN_OR_RETURN(registry::ModelStatus status, load ? registry_.Load(stored->name, stored->version)
                                                      : registry_.Get(stored->name, stored->version));
  ModelStatusToProto(status, response);
  return absl::OkStatus();
}

void ModelsService::RunOnControlPool(grpc::CallbackServerContext* context,
                                     grpc::ServerUnaryReactor* reactor,
                                     std::function<absl::Status()> work) {
  const std::string request_id = RequestId(*context);
  const bool scheduled = control_pool_.TrySchedule([reactor, work = std::move(work), request_id] {
    reactor->Finish(ToGrpcStatus(work(), request_id));
  });
  if (!scheduled) {
    reactor->Finish(ToGrpcStatus(absl::ResourceExhaustedError(kControlPoolBusy), request_id));
  }
}

grpc::ServerUnaryReactor* ModelsService::List(grpc::CallbackServerContext* context,
                                              const v1::ListModelsRequest* request,
                                              v1::ListModelsResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  for (const auto& status : registry_.List()) {
    if (!request->name().empty() && status.stored.name != request->name()) continue;
    ModelStatusToProto(status, response->add_models());
  }
  for (const auto& [alias, target] : registry_.Aliases()) {
    (*response->mutable_aliases())[alias] =
        target.version == 0 ? target.name : absl::StrCat(target.name, ":", target.version);
  }
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* ModelsService::Get(grpc::CallbackServerContext* context,
                                             const v1::GetModelRequest* request,
                                             v1::ModelInfo* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = CheckRef(request->model()); !s.ok()) return FinishUnary(context, s);
  auto status = registry_.Get(request->model().name(), request->model().version());
  if (status.ok()) ModelStatusToProto(*status, response);
  return FinishUnary(context, status.status());
}

grpc::ServerUnaryReactor* ModelsService::Load(grpc::CallbackServerContext* context,
                                              const v1::LoadModelRequest* request,
                                              v1::ModelInfo* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kAdmin); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = CheckRef(request->model()); !s.ok()) return FinishUnary(context, s);
  auto* reactor = context->DefaultReactor();
  const v1::ModelRef ref = request->model();
  RunOnControlPool(context, reactor, [this, ref, response]() -> absl::Status {
    ASSIGN_OR_RETURN(registry::ModelStatus status, registry_.Load(ref.name(), ref.version()));
    ModelStatusToProto(status, response);
    return absl::OkStatus();
  });
  return reactor;
}

grpc::ServerUnaryReactor* ModelsService::Unload(grpc::CallbackServerContext* context,
                                                const v1::UnloadModelRequest* request,
                                                v1::ModelInfo* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kAdmin); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = CheckRef(request->model()); !s.ok()) return FinishUnary(context, s);
  auto status = registry_.Unload(request->model().name(), request->model().version());
  if (status.ok()) ModelStatusToProto(*status, response);
  return FinishUnary(context, status.status());
}

grpc::ServerUnaryReactor* ModelsService::Import(grpc::CallbackServerContext* context,
                                                const v1::ImportModelRequest* request,
                                                v1::ModelInfo* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kAdmin); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  auto config = ConfigFromProto(request->config());
  if (!config.ok()) return FinishUnary(context, config.status());
  if (absl::Status s = registry::ValidateModelName(request->name(), "name"); !s.ok()) {
    return FinishUnary(context, s);
  }
  if (request->state_dict().empty()) {
    return FinishUnary(context, absl::InvalidArgumentError("state_dict: required"));
  }
  if (absl::Status s = registry::ValidateImportId(request->import_id(), "import_id"); !s.ok()) {
    return FinishUnary(context, s);
  }
  auto* reactor = context->DefaultReactor();
  auto import = std::make_shared<registry::ImportRequest>();
  import->name = request->name();
  import->config = *config;
  import->state_dict_bytes = request->state_dict();
  import->strict = !request->non_strict();
  import->import_id = request->import_id();
  const bool load = request->load();
  RunOnControlPool(context, reactor, [this, import, load, response]() -> absl::Status {
    return ImportAndDescribe(*import, load, response);
  });
  return reactor;
}

grpc::ServerReadReactor<v1::ImportModelChunk>* ModelsService::ImportStream(
    grpc::CallbackServerContext* context, v1::ModelInfo* response) {
  using Failed = FailedReadReactor<v1::ImportModelChunk>;
  auto caller = access_.Authorize(*context, auth::Role::kAdmin);
  if (!caller.ok()) return new Failed(ToGrpcStatus(caller.status(), RequestId(*context)));
  auto slot = access_.OpenStream(*caller);
  if (!slot.ok()) return new Failed(ToGrpcStatus(slot.status(), RequestId(*context)));
  return NewImportReactor(context, options_.incoming_dir, options_.max_model_bytes, control_pool_,
                          std::move(*slot), kControlPoolBusy,
                          [this, response](const registry::ImportRequest& request, bool load) {
                            return ImportAndDescribe(request, load, response);
                          });
}

grpc::ServerWriteReactor<v1::ExportModelChunk>* ModelsService::Export(
    grpc::CallbackServerContext* context, const v1::ExportModelRequest* request) {
  using Failed = FailedWriteReactor<v1::ExportModelChunk>;
  const std::string request_id = RequestId(*context);
  auto caller = access_.Authorize(*context, auth::Role::kTrainer);
  if (!caller.ok()) return new Failed(ToGrpcStatus(caller.status(), request_id));
  if (absl::Status s = CheckRef(request->model()); !s.ok()) {
    return new Failed(ToGrpcStatus(s, request_id));
  }
  registry::ExportFormat format = registry::ExportFormat::kSmp;
  switch (request->format()) {
    case v1::ExportModelRequest::FORMAT_UNSPECIFIED:
    case v1::ExportModelRequest::FORMAT_SMP: break;
    case v1::ExportModelRequest::FORMAT_TORCHVISION_ENCODER:
      format = registry::ExportFormat::kTorchvisionEncoder;
      break;
    default:
      return new Failed(ToGrpcStatus(
          absl::InvalidArgumentError(absl::StrCat(
              "format: unknown value ", static_cast<int>(request->format()),
              " (FORMAT_SMP = 1, FORMAT_TORCHVISION_ENCODER = 2)")),
          request_id));
  }
  auto slot = access_.OpenStream(*caller);
  if (!slot.ok()) return new Failed(ToGrpcStatus(slot.status(), request_id));
  const v1::ModelRef ref = request->model();
  return NewExportReactor(
      std::move(*slot), control_pool_, kControlPoolBusy, request_id,
      [this, ref, format]() -> absl::StatusOr<ExportedFile> {
        ASSIGN_OR_RETURN(registry::ModelStatus status, registry_.Get(ref.name(), ref.version()));
        ASSIGN_OR_RETURN(status.stored.checkpoint_path, registry_.CheckpointFile(status.stored));
        ASSIGN_OR_RETURN(registry::ExportedStateDict file,
                         registry::ExportStateDict(status.stored, format));
        ExportedFile exported;
        ModelStatusToProto(status, exported.header.mutable_model());
        exported.header.set_size_bytes(static_cast<int64_t>(file.bytes.size()));
        exported.header.set_sha256(
            common::Sha256Hex(std::string_view(file.bytes.data(), file.bytes.size())));
        exported.header.set_tensors(file.tensors);
        exported.bytes = std::move(file.bytes);
        return exported;
      });
}

grpc::ServerUnaryReactor* ModelsService::SetAlias(grpc::CallbackServerContext* context,
                                                  const v1::SetAliasRequest* request,
                                                  v1::SetAliasResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kAdmin); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = CheckRef(request->model()); !s.ok()) return FinishUnary(context, s);
  auto* reactor = context->DefaultReactor();
  // Rewrites aliases.json (and fsyncs it): the control pool, like every model-store write.
  RunOnControlPool(context, reactor,
                   [this, alias = request->alias(),
                    target = registry::AliasTarget{request->model().name(),
                                                   request->model().version()}]() {
                     return registry_.SetAlias(alias, target);
                   });
  return reactor;
}

grpc::ServerUnaryReactor* ModelsService::Delete(grpc::CallbackServerContext* context,
                                                const v1::DeleteModelRequest* request,
                                                v1::DeleteModelResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kAdmin); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = registry::ValidateModelName(request->name(), "name"); !s.ok()) {
    return FinishUnary(context, s);
  }
  if (request->all_versions() == (request->version() != 0)) {
    return FinishUnary(context, absl::InvalidArgumentError(
                                    "version, all_versions: give exactly one (version >= 1, or "
                                    "all_versions to delete every version of the name)"));
  }
  if (request->version() < 0) {
    return FinishUnary(context, absl::InvalidArgumentError("version: must be >= 1"));
  }
  const std::string name = request->name();
  const int64_t version =
      request->all_versions() ? registry::ModelStore::kAllVersions : request->version();
  auto* reactor = context->DefaultReactor();
  // Unloading waits for nothing, but removing a checkpoint's files blocks: control pool.
  RunOnControlPool(context, reactor, [this, name, version, response]() -> absl::Status {
    absl::StatusOr<std::vector<registry::StoredVersion>> deleted = registry_.Delete(name, version);
    if (options_.on_change) options_.on_change();
    RETURN_IF_ERROR(deleted.status());
    for (const registry::StoredVersion& stored : *deleted) {
      response->add_deleted_versions(stored.version);
      response->set_freed_bytes(response->freed_bytes() + stored.disk_bytes);
    }
    return absl::OkStatus();
  });
  return reactor;
}

}  // namespace segserve::api
