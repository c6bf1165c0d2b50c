// File: server/api/segmentation_service.h — segserve.v1.Segmentation on the callback API:
// validate and convert on the gRPC thread (cheap), hand the work to the inference engine,
// answer from the engine's callback. SegmentStream keeps up to max_inflight images of a
// stream in the engine; beyond that it stops reading, so gRPC flow control pushes back.
#pragma once

#include "segserve/v1/segmentation.grpc.pb.h"
#include "server/api/access_control.h"
#include "server/inference/engine.h"
#include "server/registry/registry.h"

namespace segserve::api {

struct SegmentationServiceOptions {
  int64_t max_image_pixels = 4096ll * 4096;
  int max_stream_inflight = 32;
};

class SegmentationService final : public v1::Segmentation::CallbackService {
 public:
  SegmentationService(const SegmentationServiceOptions& options, registry::ModelRegistry& registry,
                      inference::SegmentationEngine& engine, AccessControl& access);

  grpc::ServerUnaryReactor* Segment(grpc::CallbackServerContext* context,
                                    const v1::SegmentRequest* request,
                                    v1::SegmentResponse* response) override;
  grpc::ServerBidiReactor<v1::SegmentRequest, v1::SegmentResponse>* SegmentStream(
      grpc::CallbackServerContext* context) override;

  // Validates `request` and starts it; `done` gets the response or the error status. The
  // image bytes are read where `request` holds them: it must stay alive until `done` runs.
  void Start(const v1::SegmentRequest& request, const std::string& request_id,
             inference::Clock::time_point deadline,
             std::shared_ptr<const inference::CancelFlag> cancelled,
             std::function<void(absl::StatusOr<v1::SegmentResponse>)> done);

  const SegmentationServiceOptions& options() const { return options_; }

 private:
  const SegmentationServiceOptions options_;
  registry::ModelRegistry& registry_;
  inference::SegmentationEngine& engine_;
  AccessControl& access_;
};

}  // namespace segserve::api
