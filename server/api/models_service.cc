#include "server/api/models_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/api/converters.h"
#include "server/api/failed_reactors.h"
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

constexpr size_t kExportChunkBytes = 1 << 20;
constexpr const char* kIncomingPrefix = "model-";
constexpr const char* kControlPoolBusy = "too many model loads/imports queued; retry later";

bool IsLowerHexSha256(const std::string& text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// ImportStream: the header is checked, data chunks are appended to a temporary file under
// the incoming directory as they arrive (and hashed), and at the client's half-close the
// import runs on the control pool from that file. Every way out removes the file. Finish
// is called once: by Fail (on a gRPC reaction) or by the control-pool task, never both,
// so the pool task never meets a deleted reactor (OnDone follows Finish).
class ImportReactor final : public grpc::ServerReadReactor<v1::ImportModelChunk> {
 public:
  using ImportFn = std::function<absl::Status(const registry::ImportRequest&, bool load)>;

  ImportReactor(grpc::CallbackServerContext* context, const ModelsServiceOptions& options,
                common::ThreadPool& pool, std::unique_ptr<StreamSlot> slot, ImportFn import)
      : context_(context),
        options_(options),
        pool_(pool),
        slot_(std::move(slot)),
        import_(std::move(import)),
        request_id_(RequestId(*context)) {
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      EndOfStream();
      return;
    }
    absl::Status status;
    switch (chunk_.part_case()) {
      case v1::ImportModelChunk::kHeader: status = Header(chunk_.header()); break;
      case v1::ImportModelChunk::kData: status = Data(chunk_.data()); break;
      default:
        status = absl::InvalidArgumentError("part: every message must hold a header or data");
    }
    if (!status.ok()) {
      Fail(status);
      return;
    }
    StartRead(&chunk_);
  }

  void OnDone() override {
    RemoveFile();
    delete this;
  }

 private:
  absl::Status Header(const v1::ImportModelRequest& header) {
    if (have_header_) {
      return absl::InvalidArgumentError("header: sent twice; send it once, first, then data");
    }
    have_header_ = true;
    ASSIGN_OR_RETURN(request_.config, ConfigFromProto(header.config()));
    RETURN_IF_ERROR(registry::ValidateModelName(header.name(), "header.name"));
    if (!header.state_dict().empty()) {
      return absl::InvalidArgumentError(
          "header.state_dict: must be empty in ImportStream (send the file as data chunks)");
    }
    if (header.state_dict_bytes() < 0 || header.state_dict_bytes() > options_.max_model_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header.state_dict_bytes: ", header.state_dict_bytes(), " is over the server's limit (",
          options_.max_model_bytes, " bytes, --max_model_bytes) or negative"));
    }
    if (!header.state_dict_sha256().empty() && !IsLowerHexSha256(header.state_dict_sha256())) {
      return absl::InvalidArgumentError(
          "header.state_dict_sha256: must be 64 lower-case hex characters (or empty)");
    }
    if (options_.incoming_dir.empty()) {
      return absl::FailedPreconditionError("ImportStream: this server has no incoming directory");
    }
    request_.name = header.name();
    request_.strict = !header.non_strict();
    load_ = header.load();
    declared_bytes_ = header.state_dict_bytes();
    declared_sha256_ = header.state_dict_sha256();
    std::string path = absl::StrCat(options_.incoming_dir, "/", kIncomingPrefix, "XXXXXX.part");
    fd_ = ::mkstemps(path.data(), 5);
    if (fd_ < 0) {
      return absl::InternalError(
          absl::StrCat("cannot create a file in ", options_.incoming_dir, ": ", strerror(errno)));
    }
    path_ = path;
    return absl::OkStatus();
  }

  absl::Status Data(const std::string& data) {
    if (!have_header_) {
      return absl::InvalidArgumentError(
          "header: the first message must be the header (an ImportModelRequest)");
    }
    const int64_t limit = declared_bytes_ > 0 ? declared_bytes_ : options_.max_model_bytes;
    if (received_ + static_cast<int64_t>(data.size()) > limit) {
      return absl::InvalidArgumentError(
          declared_bytes_ > 0
              ? absl::StrCat("data: more bytes than header.state_dict_bytes (", declared_bytes_,
                             ")")
              : absl::StrCat("data: the file is over the server's limit (",
                             options_.max_model_bytes, " bytes, --max_model_bytes)"));
    }
    size_t written = 0;
    while (written < data.size()) {
      const ssize_t n = ::write(fd_, data.data() + written, data.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int error = errno;
        return error == ENOSPC ? absl::ResourceExhaustedError(absl::StrCat(
                                     "no space left in ", options_.incoming_dir))
                               : absl::InternalError(absl::StrCat("writing ", path_, ": ",
                                                                  strerror(error)));
      }
      written += static_cast<size_t>(n);
    }
    hash_.Update(data);
    received_ += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }

  void EndOfStream() {
    if (context_->IsCancelled()) {
      Fail(absl::CancelledError("import stream cancelled before its end; nothing was imported"));
      return;
    }
    if (!have_header_) {
      Fail(absl::InvalidArgumentError(
          "header: the first message must be the header (an ImportModelRequest)"));
      return;
    }
    ::close(fd_);
    fd_ = -1;
    if (received_ == 0) {
      Fail(absl::InvalidArgumentError("data: no state-dict bytes were sent"));
      return;
    }
    if (declared_bytes_ > 0 && received_ != declared_bytes_) {
      Fail(absl::InvalidArgumentError(absl::StrCat("data: ", received_,
                                                   " bytes received, header.state_dict_bytes ",
                                                   "declared ", declared_bytes_)));
      return;
    }
    const std::string sha256 = common::DigestHex(hash_.Finish());
    if (!declared_sha256_.empty() && sha256 != declared_sha256_) {
      Fail(absl::InvalidArgumentError(
          absl::StrCat("header.state_dict_sha256: declared ", declared_sha256_,
                       ", the bytes received hash to ", sha256)));
      return;
    }
    request_.state_dict_path = path_;
    const bool scheduled = pool_.TrySchedule([this] {
      const absl::Status status = import_(request_, load_);
      RemoveFile();
      Finish(ToGrpcStatus(status, request_id_));
    });
    if (!scheduled) Fail(absl::ResourceExhaustedError(kControlPoolBusy));
  }

  void Fail(const absl::Status& status) {
    RemoveFile();
    Finish(ToGrpcStatus(status, request_id_));
  }

  void RemoveFile() {
    std::lock_guard<std::mutex> lock(file_mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!path_.empty()) ::unlink(path_.c_str());
    path_.clear();
  }

  grpc::CallbackServerContext* context_;
  const ModelsServiceOptions& options_;
  common::ThreadPool& pool_;
  std::unique_ptr<StreamSlot> slot_;  // counts against the client's stream limit
  ImportFn import_;
  const std::string request_id_;
  v1::ImportModelChunk chunk_;
  registry::ImportRequest request_;
  bool have_header_ = false;
  bool load_ = false;
  int64_t declared_bytes_ = 0;
  std::string declared_sha256_;
  int64_t received_ = 0;
  common::Sha256 hash_;
  std::mutex file_mu_;  // RemoveFile: the pool task, then OnDone
  int fd_ = -1;
  std::string path_;
};

// Export: the pool task writes the state dict into the reactor (Start), which then streams
// the header and 1 MiB chunks from its gRPC reactions. Finish is called by the pool task
// (on an error) or by the write chain, never both.
class ExportReactor final : public grpc::ServerWriteReactor<v1::ExportModelChunk> {
 public:
  explicit ExportReactor(std::unique_ptr<StreamSlot> slot) : slot_(std::move(slot)) {}

  // From the pool task, once.
  void Start(v1::ExportModelHeader header, std::vector<char> bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    bytes_ = std::move(bytes);
    *outgoing_.mutable_header() = std::move(header);
    StartWrite(&outgoing_);
  }
  void Fail(const grpc::Status& status) { Finish(status); }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "export stream went away"));
      return;
    }
    if (offset_ >= bytes_.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t n = std::min(kExportChunkBytes, bytes_.size() - offset_);
    outgoing_.set_data(bytes_.data() + offset_, n);
    offset_ += n;
    StartWrite(&outgoing_);
  }

  void OnDone() override { delete this; }

 private:
  std::unique_ptr<StreamSlot> slot_;
  std::mutex mu_;
  std::vector<char> bytes_;
  size_t offset_ = 0;
  v1::ExportModelChunk outgoing_;
};

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
    if (name.rfind(kIncomingPrefix, 0) != 0) continue;
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
  auto* reactor = context->DefaultReactor();
  auto import = std::make_shared<registry::ImportRequest>();
  import->name = request->name();
  import->config = *config;
  import->state_dict_bytes = request->state_dict();
  import->strict = !request->non_strict();
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
  return new ImportReactor(context, options_, control_pool_, std::move(*slot),
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
  auto* reactor = new ExportReactor(std::move(*slot));
  const v1::ModelRef ref = request->model();
  const bool scheduled = control_pool_.TrySchedule([this, reactor, ref, format, request_id] {
    auto exported =
        [&]() -> absl::StatusOr<std::pair<v1::ExportModelHeader, std::vector<char>>> {
      ASSIGN_OR_RETURN(registry::ModelStatus status, registry_.Get(ref.name(), ref.version()));
      ASSIGN_OR_RETURN(registry::ExportedStateDict file,
                       registry::ExportStateDict(status.stored, format));
      v1::ExportModelHeader header;
      ModelStatusToProto(status, header.mutable_model());
      header.set_size_bytes(static_cast<int64_t>(file.bytes.size()));
      header.set_sha256(common::Sha256Hex(std::string_view(file.bytes.data(), file.bytes.size())));
      header.set_tensors(file.tensors);
      return std::make_pair(std::move(header), std::move(file.bytes));
    }();
    if (!exported.ok()) {
      reactor->Fail(ToGrpcStatus(exported.status(), request_id));
      return;
    }
    reactor->Start(std::move(exported->first), std::move(exported->second));
  });
  if (!scheduled) {
    reactor->Fail(ToGrpcStatus(absl::ResourceExhaustedError(kControlPoolBusy), request_id));
  }
  return reactor;
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
