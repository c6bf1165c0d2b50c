// File: server/inference/engine.h — segmentation of one image end to end: decode and
// normalise on the CPU pool, split into tiles when larger than a tile, run through the
// batching scheduler at interactive priority, blend tile logits with Gaussian weights, and post-process (argmax mask, class
// fractions, optional probabilities). Asynchronous: the gRPC layer hands a request over
// and is called back once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/common/thread_pool.h"
#include "server/data/image.h"
#include "server/inference/batch_scheduler.h"
#include "server/registry/registry.h"

namespace segserve::inference {

struct EngineOptions {
  int default_tile_size = 512;
  double default_tile_overlap = 0.25;
  int64_t max_image_pixels = 4096ll * 4096;
  int max_tiles_per_request = 1024;
  // Tiles of one request in the batcher at once (bounds memory of huge images).
  int max_inflight_tiles = 16;
};

// The image of a request, read where the request holds it (no copy): encoded file bytes
// (decoded on the pool) or a checked raw tensor (inference/preprocess.h), both views into
// the request message, or an image built in memory. The caller keeps the viewed bytes alive
// until `done` is called; the engine reads them only before it calls `done` and drops the
// views once the model input is built.
struct ImageInput {
  std::string_view encoded;
  std::optional<data::ImageView> raw;
  std::optional<data::Image> decoded;
};

struct SegmentParams {
  bool return_probabilities = false;
  int tile_size = 0;       // 0 = default
  double tile_overlap = 0;  // 0 = default
};

struct SegmentTimings {
  double queue_seconds = 0;
  double preprocess_seconds = 0;
  double compute_seconds = 0;
  double postprocess_seconds = 0;
  double total_seconds = 0;
};

struct SegmentResult {
  data::Mask mask;
  std::vector<double> class_fractions;  // index = class id
  std::vector<float> probabilities;     // classes x H x W when requested
  int classes = 0;
  int tiles = 1;
  // Domain-shift score against the model's training reference (mean over tiles), in
  // [0, 1]; -1 when the model has no reference statistics.
  double shift_score = -1;
  std::string model_name;
  int64_t model_version = 0;
  bool bfloat16 = false;  // the arithmetic that answered (LoadedModel::bfloat16)
  SegmentTimings timings;
};

using SegmentCallback = std::function<void(absl::StatusOr<SegmentResult>)>;

class SegmentationEngine {
 public:
  SegmentationEngine(const EngineOptions& options, BatchScheduler& scheduler,
                     common::ThreadPool& cpu_pool);

  // Validates the parameters (InvalidArgument naming options.tile_size / tile_overlap).
  absl::Status ValidateParams(const SegmentParams& params) const;

  // Segments `image` with `model`. `done` is called exactly once, from an engine thread
  // (or inline when the request is refused at once: queue full, invalid input).
  void Segment(std::shared_ptr<const registry::LoadedModel> model, ImageInput image,
               const SegmentParams& params, Clock::time_point deadline,
               std::shared_ptr<const CancelFlag> cancelled, SegmentCallback done);

  const EngineOptions& options() const { return options_; }

 private:
  struct Request;
  void Preprocess(std::shared_ptr<Request> request);
  void SubmitTiles(const std::shared_ptr<Request>& request, bool continuation);
  void OnTileDone(const std::shared_ptr<Request>& request, size_t tile,
                  absl::StatusOr<BatchResult> result);
  void Postprocess(std::shared_ptr<Request> request);

  const EngineOptions options_;
  BatchScheduler& scheduler_;
  common::ThreadPool& cpu_pool_;
};

}  // namespace segserve::inference
