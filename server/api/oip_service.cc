#include "server/api/oip_service.h"

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/api/call_deadline.h"
#include "absl/synchronization/mutex.h"
#include "server/api/request_id.h"
#include "server/api/status_mapping.h"

namespace segserve::api {
namespace {

// As Segment's: the call's deadline on the engine's clock.
// The registry names segserve.v1's fields (model.name, model.version); say the OIP ones.
absl::Status InOipTerms(const absl::Status& status, const std::string& name_field,
                        const std::string& version_field) {
  std::string message(status.message());
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"model.name", name_field},
                                 {"model.version", version_field}}) {
    if (absl::StartsWith(message, from)) message = to + message.substr(from.size());
  }
  return absl::Status(status.code(), message);
}

grpc::ServerUnaryReactor* FinishOk(grpc::CallbackServerContext* context) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

// ModelInfer: one engine Segment per image; the call finishes once every image has come
// back (the first error cancels the rest), so no engine callback outlives the reactor.
class InferReactor final : public grpc::ServerUnaryReactor {
 public:
  InferReactor(std::shared_ptr<const registry::LoadedModel> model, std::vector<data::Image> images,
               const inference::SegmentParams& params, std::vector<std::string> outputs,
               std::string id, std::string request_id, inference::Clock::time_point deadline,
               inference::SegmentationEngine& engine, oip::ModelInferResponse* response)
      : model_(std::move(model)),
        outputs_(std::move(outputs)),
        id_(std::move(id)),
        request_id_(std::move(request_id)),
        response_(response),
        cancelled_(std::make_shared<inference::CancelFlag>(false)),
        results_(images.size()),
        pending_(static_cast<int>(images.size())) {
    // Nothing of `this` may be touched after the last Segment call: its callback may
    // already have finished the call.
    const auto model_ref = model_;
    const auto cancelled = cancelled_;
    const size_t n = images.size();
    for (size_t i = 0; i < n; ++i) {
      inference::ImageInput input;
      input.decoded = std::move(images[i]);
      engine.Segment(model_ref, std::move(input), params, deadline, cancelled,
                     [this, i](absl::StatusOr<inference::SegmentResult> result) {
                       OnResult(i, std::move(result));
                     });
    }
  }

  void OnCancel() override { cancelled_->store(true); }
  void OnDone() override { delete this; }

 private:
  void OnResult(size_t i, absl::StatusOr<inference::SegmentResult> result) {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      if (result.ok()) {
        results_[i] = std::move(*result);
      } else if (error_.ok()) {
        error_ = result.status();
        cancelled_->store(true);
      }
      last = --pending_ == 0;
    }
    if (last) Complete();
  }

  void Complete() {
    absl::Status error;
    std::vector<inference::SegmentResult> results;
    {
      absl::MutexLock lock(&mu_);
      error = error_;
      results = std::move(results_);
    }
    if (!error.ok()) {
      Finish(ToGrpcStatus(error, request_id_));
      return;
    }
    response_->set_model_name(model_->stored.name);
    response_->set_model_version(std::to_string(model_->stored.version));
    response_->set_id(id_);
    (*response_->mutable_parameters())["precision"].set_string_param(model_->bfloat16 ? "bf16"
                                                                                      : "fp32");
    FillInferResponse(results, outputs_, response_);
    Finish(grpc::Status::OK);
  }

  const std::shared_ptr<const registry::LoadedModel> model_;
  const std::vector<std::string> outputs_;
  const std::string id_;
  const std::string request_id_;
  oip::ModelInferResponse* const response_;
  const std::shared_ptr<inference::CancelFlag> cancelled_;
  absl::Mutex mu_;
  std::vector<inference::SegmentResult> results_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  int pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

OipService::OipService(OipServiceOptions options, registry::ModelRegistry& registry,
                       inference::SegmentationEngine& engine, AccessControl& access)
    : options_(std::move(options)), registry_(registry), engine_(engine), access_(access) {}

absl::StatusOr<registry::StoredVersion> OipService::StoredFor(const std::string& name,
                                                              const std::string& version) const {
  if (name.empty()) return absl::InvalidArgumentError("name: required (a model or alias)");
  auto parsed = ParseModelVersion(version, "version");
  if (!parsed.ok()) return parsed.status();
  auto model = registry_.Resolve(name, *parsed);
  if (model.ok()) return (*model)->stored;
  if (model.status().code() != absl::StatusCode::kFailedPrecondition) {
    return InOipTerms(model.status(), "name", "version");
  }
  auto status = registry_.Get(name, *parsed);
  if (!status.ok()) return InOipTerms(status.status(), "name", "version");
  return status->stored;
}

grpc::ServerUnaryReactor* OipService::ServerLive(grpc::CallbackServerContext* context,
                                                 const oip::ServerLiveRequest*,
                                                 oip::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishOk(context);
}

grpc::ServerUnaryReactor* OipService::ServerReady(grpc::CallbackServerContext* context,
                                                  const oip::ServerReadyRequest*,
                                                  oip::ServerReadyResponse* response) {
  response->set_ready(options_.ready());
  return FinishOk(context);
}

grpc::ServerUnaryReactor* OipService::ServerMetadata(grpc::CallbackServerContext* context,
                                                     const oip::ServerMetadataRequest*,
                                                     oip::ServerMetadataResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  response->set_name("segserve");
  response->set_version(options_.server_version);
  return FinishOk(context);
}

grpc::ServerUnaryReactor* OipService::ModelReady(grpc::CallbackServerContext* context,
                                                 const oip::ModelReadyRequest* request,
                                                 oip::ModelReadyResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (request->name().empty()) {
    return FinishUnary(context, absl::InvalidArgumentError("name: required (a model or alias)"));
  }
  auto version = ParseModelVersion(request->version(), "version");
  if (!version.ok()) return FinishUnary(context, version.status());
  auto model = registry_.Resolve(request->name(), *version);
  // Known but not loaded (or failed to load) is "not ready"; unknown is NOT_FOUND.
  if (!model.ok() && model.status().code() != absl::StatusCode::kFailedPrecondition) {
    return FinishUnary(context, InOipTerms(model.status(), "name", "version"));
  }
  response->set_ready(model.ok());
  return FinishOk(context);
}

grpc::ServerUnaryReactor* OipService::ModelMetadata(grpc::CallbackServerContext* context,
                                                    const oip::ModelMetadataRequest* request,
                                                    oip::ModelMetadataResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  auto stored = StoredFor(request->name(), request->version());
  if (!stored.ok()) return FinishUnary(context, stored.status());
  response->set_name(request->name());
  response->set_platform("segserve_unet");
  for (const auto& status : registry_.List()) {
    if (status.stored.name == stored->name && status.state == registry::LoadState::kLoaded) {
      response->add_versions(std::to_string(status.stored.version));
    }
  }
  FillTensorMetadata(stored->config, response);
  return FinishOk(context);
}

grpc::ServerUnaryReactor* OipService::ModelInfer(grpc::CallbackServerContext* context,
                                                 const oip::ModelInferRequest* request,
                                                 oip::ModelInferResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kSegmenter); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (request->id().size() > 128) {
    return FinishUnary(context, absl::InvalidArgumentError("id: at most 128 bytes"));
  }
  if (request->model_name().empty()) {
    return FinishUnary(context,
                       absl::InvalidArgumentError("model_name: required (a model or alias)"));
  }
  auto version = ParseModelVersion(request->model_version(), "model_version");
  if (!version.ok()) return FinishUnary(context, version.status());
  auto model = registry_.Resolve(request->model_name(), *version);
  if (!model.ok()) {
    return FinishUnary(context, InOipTerms(model.status(), "model_name", "model_version"));
  }
  auto outputs = RequestedOutputs(*request);
  if (!outputs.ok()) return FinishUnary(context, outputs.status());
  auto params = ParamsFromInferRequest(*request, *outputs);
  if (!params.ok()) return FinishUnary(context, params.status());
  if (absl::Status valid = engine_.ValidateParams(*params); !valid.ok()) {
    // The engine names Segment's options.*; the same values arrive here as parameters.*.
    std::string message(valid.message());
    if (absl::StartsWith(message, "options.")) message = "parameters." + message.substr(8);
    return FinishUnary(context, absl::Status(valid.code(), message));
  }
  auto images = ImagesFromInferRequest(*request, options_.limits);
  if (!images.ok()) return FinishUnary(context, images.status());
  return new InferReactor(std::move(*model), std::move(*images), *params, std::move(*outputs),
                          request->id(), RequestId(*context), DeadlineOf(*context), engine_,
                          response);
}

grpc::ServerUnaryReactor* OipService::RepositoryIndex(grpc::CallbackServerContext* context,
                                                      const oip::RepositoryIndexRequest* request,
                                                      oip::RepositoryIndexResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  // Each version under its model name, then under each alias that reaches it (the names
  // ModelMetadata, ModelConfig and ModelInfer accept).
  for (const auto& status : registry_.List()) {
    const bool loaded = status.state == registry::LoadState::kLoaded;
    if (request->ready() && !loaded) continue;
    oip::RepositoryIndexResponse::ModelIndex entry;
    entry.set_version(std::to_string(status.stored.version));
    switch (status.state) {
      case registry::LoadState::kLoaded:
        entry.set_state("READY");
        break;
      case registry::LoadState::kLoading:
        entry.set_state("LOADING");
        break;
      case registry::LoadState::kUnloaded:
        entry.set_state("UNAVAILABLE");
        entry.set_reason("not loaded");
        break;
      case registry::LoadState::kFailed:
        entry.set_state("UNAVAILABLE");
        entry.set_reason(status.load_error);
        break;
    }
    entry.set_name(status.stored.name);
    *response->add_models() = entry;
    for (const std::string& alias : status.aliases) {
      entry.set_name(alias);
      *response->add_models() = entry;
    }
  }
  return FinishOk(context);
}

grpc::ServerUnaryReactor* OipService::ModelConfig(grpc::CallbackServerContext* context,
                                                  const oip::ModelConfigRequest* request,
                                                  oip::ModelConfigResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kViewer); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  auto stored = StoredFor(request->name(), request->version());
  if (!stored.ok()) return FinishUnary(context, stored.status());
  FillModelConfig(stored->config, request->name(), options_.limits, options_.batching,
                  response->mutable_config());
  return FinishOk(context);
}

}  // namespace segserve::api
