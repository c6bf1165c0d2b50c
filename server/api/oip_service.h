// File: server/api/oip_service.h — inference.GRPCInferenceService, the Open Inference
// Protocol (KServe v2) on segserve's port, beside segserve.v1 and on the same components:
// models are registry names and aliases, and each image of a ModelInfer batch is one
// Segment through the SegmentationEngine (batching, tiling, limits, deadlines,
// cancellation and metrics are Segment's). Auth: ServerLive and ServerReady are open like
// grpc.health.v1; ModelInfer needs the segmenter role, the other methods (ModelMetadata,
// Triton's ModelConfig and RepositoryIndex included) viewer.
#pragma once

#include <functional>
#include <string>

#include "inference/open_inference.grpc.pb.h"
#include "server/api/access_control.h"
#include "server/api/oip_tensors.h"
#include "server/inference/engine.h"
#include "server/registry/registry.h"

namespace segserve::api {

struct OipServiceOptions {
  OipLimits limits;
  // The dynamic batcher's settings, as ModelConfig states them.
  OipBatching batching;
  std::string server_version;
  // Whether start-up has finished (the health service's SERVING).
  std::function<bool()> ready = [] { return true; };
};

class OipService final : public oip::GRPCInferenceService::CallbackService {
 public:
  OipService(OipServiceOptions options, registry::ModelRegistry& registry,
             inference::SegmentationEngine& engine, AccessControl& access);

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const oip::ServerLiveRequest* request,
                                       oip::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const oip::ServerReadyRequest* request,
                                        oip::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const oip::ModelReadyRequest* request,
                                       oip::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const oip::ServerMetadataRequest* request,
                                           oip::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const oip::ModelMetadataRequest* request,
                                          oip::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const oip::ModelInferRequest* request,
                                       oip::ModelInferResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const oip::RepositoryIndexRequest* request,
                                            oip::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const oip::ModelConfigRequest* request,
                                        oip::ModelConfigResponse* response) override;

  inference::SegmentationEngine& engine() { return engine_; }

 private:
  // The stored version a ModelInfer on (name, version) would run; a stored version that
  // is not loaded counts too. NOT_FOUND / INVALID_ARGUMENT in the OIP's field names.
  absl::StatusOr<registry::StoredVersion> StoredFor(const std::string& name,
                                                    const std::string& version) const;

  const OipServiceOptions options_;
  registry::ModelRegistry& registry_;
  inference::SegmentationEngine& engine_;
  AccessControl& access_;
};

}  // namespace segserve::api
