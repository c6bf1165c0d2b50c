#include "server/inference/engine.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/data/codec.h"
#include "server/inference/preprocess.h"
#include "server/inference/tiling.h"

namespace segserve::inference {
namespace {

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

// One request's state, shared by its tiles' callbacks.
struct SegmentationEngine::Request {
  std::shared_ptr<const registry::LoadedModel> model;
  ImageInput image;
  SegmentParams params;
  Clock::time_point deadline;
  std::shared_ptr<const CancelFlag> cancelled;
  SegmentCallback done;
  Clock::time_point start = Clock::now();

  PlanarImage input;
  TileGrid grid;
  std::vector<float> importance;  // tile weights (tiled requests only)

  // Tiles complete on the executor thread, the request is post-processed on the pool: the
  // fields below are shared between them. (input, grid and importance are written before the
  // first tile is submitted and only read afterwards.)
  absl::Mutex mu;
  size_t next_tile ABSL_GUARDED_BY(mu) = 0;       // next tile to submit
  size_t finished_tiles ABSL_GUARDED_BY(mu) = 0;  // tiles whose result arrived
  bool failed ABSL_GUARDED_BY(mu) = false;
  std::vector<float> logits ABSL_GUARDED_BY(mu);   // classes x H x W blended sum (tiled only)
  LogitsView single ABSL_GUARDED_BY(mu);  // the one tile's logits, shared with its batch
  std::vector<float> weights ABSL_GUARDED_BY(mu);  // H x W weight sums (tiled only)
  SegmentTimings timings ABSL_GUARDED_BY(mu);
  double shift_sum ABSL_GUARDED_BY(mu) = 0;
  int shift_count ABSL_GUARDED_BY(mu) = 0;
};

SegmentationEngine::SegmentationEngine(const EngineOptions& options, BatchScheduler& scheduler,
                                       common::ThreadPool& cpu_pool)
    : options_(options), scheduler_(scheduler), cpu_pool_(cpu_pool) {}

absl::Status SegmentationEngine::ValidateParams(const SegmentParams& params) const {
  if (params.tile_size != 0 &&
      (params.tile_size < 64 || params.tile_size > 2048 || params.tile_size % 32 != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.tile_size: must be a multiple of 32 in 64..2048, got ", params.tile_size));
  }
  if (!(params.tile_overlap >= 0 && params.tile_overlap <= 0.75)) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.tile_overlap: must be 0..0.75, got ", params.tile_overlap));
  }
  return absl::OkStatus();
}

void SegmentationEngine::Segment(std::shared_ptr<const registry::LoadedModel> model,
                                 ImageInput image, const SegmentParams& params,
                                 Clock::time_point deadline,
                                 std::shared_ptr<const CancelFlag> cancelled,
                                 SegmentCallback done) {
  if (absl::Status s = ValidateParams(params); !s.ok()) {
    done(s);
    return;
  }
  auto request = std::make_shared<Request>();
  request->model = std::move(model);
  request->image = std::move(image);
  request->params = params;
  if (request->params.tile_size == 0) request->params.tile_size = options_.default_tile_size;
  if (request->params.tile_overlap == 0) {
    request->params.tile_overlap = options_.default_tile_overlap;
  }
  request->deadline = deadline;
  request->cancelled = std::move(cancelled);
  request->done = std::move(done);
  auto captured = request;
  if (!cpu_pool_.TrySchedule([this, captured] { Preprocess(captured); })) {
    request->done(absl::ResourceExhaustedError(
        "pre-processing queue is full; retry later"));
  }
}

void SegmentationEngine::Preprocess(std::shared_ptr<Request> request) {
  const auto start = Clock::now();
  if (request->cancelled && request->cancelled->load()) {
    request->done(absl::CancelledError("request cancelled by the client"));
    return;
  }
  if (start >= request->deadline) {
    request->done(absl::DeadlineExceededError("deadline expired before pre-processing"));
    return;
  }
  const auto& config = request->model->stored.config;
  absl::StatusOr<PlanarImage> input = absl::InvalidArgumentError("image: no pixels");
  if (!request->image.encoded.empty()) {
    auto decoded = data::DecodeImage(request->image.encoded, options_.max_image_pixels);
    if (!decoded.ok()) {
      request->done(decoded.status());
      return;
    }
    input = ToModelInput(*decoded, config);
  } else if (request->image.raw.has_value()) {
    input = ToModelInput(*request->image.raw, config);
  } else if (request->image.decoded.has_value()) {
    input = ToModelInput(*request->image.decoded, config);
  }
  request->image = ImageInput{};  // the request's bytes are not read after this point
  if (!input.ok()) {
    request->done(input.status());
    return;
  }
  request->input = std::move(*input);
  const int height = request->input.height, width = request->input.width;
  request->grid = MakeTileGrid(height, width, request->params.tile_size,
                               request->params.tile_overlap);
  const size_t tiles = request->grid.origins.size();
  if (tiles > static_cast<size_t>(options_.max_tiles_per_request)) {
    request->done(absl::InvalidArgumentError(absl::StrCat(
        "image: ", height, "x", width, " needs ", tiles, " tiles of ", request->params.tile_size,
        " pixels; the limit is ", options_.max_tiles_per_request,
        " (--max_tiles_per_request; use a larger options.tile_size)")));
    return;
  }
  const size_t pixels = static_cast<size_t>(height) * width;
  if (tiles > 1) {
    request->importance =
        GaussianImportance(request->grid.tile_height, request->grid.tile_width);
  }
  {
    absl::MutexLock lock(&request->mu);
    if (tiles > 1) {
      request->logits.assign(static_cast<size_t>(config.classes) * pixels, 0.0f);
      request->weights.assign(pixels, 0.0f);
    }
    request->timings.preprocess_seconds = Since(start);
  }
  SubmitTiles(request, /*continuation=*/false);
}

void SegmentationEngine::SubmitTiles(const std::shared_ptr<Request>& request, bool continuation) {
  const int channels = request->input.channels;
  const int height = request->input.height, width = request->input.width;
  const int th = request->grid.tile_height, tw = request->grid.tile_width;
  while (true) {
    size_t tile;
    {
      absl::MutexLock lock(&request->mu);
      if (request->failed || request->next_tile >= request->grid.origins.size()) return;
      if (request->next_tile - request->finished_tiles >=
          static_cast<size_t>(options_.max_inflight_tiles)) {
        return;
      }
      tile = request->next_tile++;
    }
    WorkItem item;
    item.model = request->model;
    item.height = th;
    item.width = tw;
    item.deadline = request->deadline;
    item.cancelled = request->cancelled;
    if (request->grid.origins.size() == 1) {
      item.input = std::move(request->input.data);  // the whole image, not copied
    } else {
      const auto [oy, ox] = request->grid.origins[tile];
      item.input.resize(static_cast<size_t>(channels) * th * tw);
      for (int c = 0; c < channels; ++c) {
        for (int y = 0; y < th; ++y) {
          const float* src = request->input.data.data() +
                             (static_cast<size_t>(c) * height + oy + y) * width + ox;
          std::copy(src, src + tw, item.input.data() + (static_cast<size_t>(c) * th + y) * tw);
        }
      }
    }
    item.done = [this, request, tile](absl::StatusOr<BatchResult> result) {
      OnTileDone(request, tile, std::move(result));
    };
    absl::Status submitted = scheduler_.Submit(std::move(item), continuation || tile > 0);
    if (!submitted.ok()) {
      bool report = false;
      {
        absl::MutexLock lock(&request->mu);
        report = !request->failed;
        request->failed = true;
      }
      if (report) request->done(submitted);
      return;
    }
  }
}

void SegmentationEngine::OnTileDone(const std::shared_ptr<Request>& request, size_t tile,
                                    absl::StatusOr<BatchResult> result) {
  bool last = false;
  {
    absl::MutexLock lock(&request->mu);
    if (request->failed) return;
    if (!result.ok()) {
      request->failed = true;
    } else {
      const int height = request->input.height, width = request->input.width;
      const int classes = request->model->stored.config.classes;
      const int th = request->grid.tile_height, tw = request->grid.tile_width;
      if (request->grid.origins.size() == 1) {
        request->single = std::move(result->logits);
      } else {
        const auto [oy, ox] = request->grid.origins[tile];
        const float* w = request->importance.data();
        for (int c = 0; c < classes; ++c) {
          for (int y = 0; y < th; ++y) {
            const float* src = result->logits.data() + (static_cast<size_t>(c) * th + y) * tw;
            float* dst =
                request->logits.data() + (static_cast<size_t>(c) * height + oy + y) * width + ox;
            const float* wy = w + static_cast<size_t>(y) * tw;
            for (int x = 0; x < tw; ++x) dst[x] += src[x] * wy[x];
          }
        }
        for (int y = 0; y < th; ++y) {
          float* dst = request->weights.data() + static_cast<size_t>(oy + y) * width + ox;
          const float* wy = w + static_cast<size_t>(y) * tw;
          for (int x = 0; x < tw; ++x) dst[x] += wy[x];
        }
      }
      request->timings.queue_seconds = std::max(request->timings.queue_seconds,
                                                result->queue_seconds);
      request->timings.compute_seconds += result->compute_seconds / result->batch_size;
      if (result->shift_score >= 0) {
        request->shift_sum += result->shift_score;
        ++request->shift_count;
      }
      ++request->finished_tiles;
      last = request->finished_tiles == request->grid.origins.size();
    }
  }
  if (!result.ok()) {
    request->done(result.status());
    return;
  }
  if (last) {
    auto captured = request;
    // Accepted work is never dropped: when the pool is saturated, post-process here.
    if (!cpu_pool_.TrySchedule([this, captured] { Postprocess(captured); })) {
      Postprocess(request);
    }
    return;
  }
  SubmitTiles(request, /*continuation=*/true);
}

void SegmentationEngine::Postprocess(std::shared_ptr<Request> request) {
  const auto start = Clock::now();
  const int height = request->input.height, width = request->input.width;
  const int classes = request->model->stored.config.classes;
  const size_t pixels = static_cast<size_t>(height) * width;
  SegmentResult result;
  // Every tile is in: nobody else touches the request; the lock makes that checkable.
  absl::ReleasableMutexLock lock(&request->mu);
  result.classes = classes;
  result.tiles = static_cast<int>(request->grid.origins.size());
  result.model_name = request->model->stored.name;
  result.model_version = request->model->stored.version;
  result.bfloat16 = request->model->bfloat16;
  result.mask = data::Mask::Create(height, width);
  std::vector<int64_t> counts(classes, 0);
  const float* logits = request->weights.empty() ? request->single.data() : request->logits.data();
  if (!request->weights.empty()) {
    // Blended logits: divide by the weight sum so every pixel is a weighted mean.
    for (int c = 0; c < classes; ++c) {
      float* plane = request->logits.data() + static_cast<size_t>(c) * pixels;
      for (size_t p = 0; p < pixels; ++p) plane[p] /= request->weights[p];
    }
  }
  if (request->params.return_probabilities) result.probabilities.resize(classes * pixels);
  for (size_t p = 0; p < pixels; ++p) {
    int best = 0;
    float best_value = logits[p];
    for (int c = 1; c < classes; ++c) {
      const float v = logits[static_cast<size_t>(c) * pixels + p];
      if (v > best_value) {
        best_value = v;
        best = c;
      }
    }
    result.mask.ids[p] = static_cast<uint8_t>(best);
    ++counts[best];
    if (request->params.return_probabilities) {
      double sum = 0;
      for (int c = 0; c < classes; ++c) {
        sum += std::exp(logits[static_cast<size_t>(c) * pixels + p] - best_value);
      }
      for (int c = 0; c < classes; ++c) {
        result.probabilities[static_cast<size_t>(c) * pixels + p] = static_cast<float>(
            std::exp(logits[static_cast<size_t>(c) * pixels + p] - best_value) / sum);
      }
    }
  }
  result.class_fractions.resize(classes);
  for (int c = 0; c < classes; ++c) {
    result.class_fractions[c] = static_cast<double>(counts[c]) / static_cast<double>(pixels);
  }
  result.timings = request->timings;
  if (request->shift_count > 0) result.shift_score = request->shift_sum / request->shift_count;
  result.timings.postprocess_seconds = Since(start);
  result.timings.total_seconds = Since(request->start);
  lock.Release();
  request->done(std::move(result));
}

}  // namespace segserve::inference
