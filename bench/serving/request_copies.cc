// File: bench/serving/request_copies.cc — bytes allocated per 256x256 Segment request on
// the serving core's data path: api::ImageFromProto (request -> engine input), the engine
// (decode, model input, batching, blending, argmax) and api::FillSegmentResponse, with the
// forward pass replaced by a runner that returns zero logits (the BatchRunner seam), so
// LibTorch's own allocations do not hide the serving core's. Counts every operator new on
// every thread while one request is in flight; requests run one at a time.
// Usage: request_copies [--size 256] [--requests 20]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>

#include "absl/synchronization/notification.h"
#include "segserve/v1/segmentation.pb.h"
#include "server/api/converters.h"
#include "server/common/thread_pool.h"
#include "server/data/codec.h"
#include "server/inference/engine.h"
#include "server/inference/executor.h"
#include "server/metrics/metrics.h"

namespace {
std::atomic<uint64_t> g_bytes{0};
std::atomic<uint64_t> g_calls{0};
}  // namespace

void* operator new(size_t size) {
  g_bytes.fetch_add(size, std::memory_order_relaxed);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return operator new(size); }
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  g_bytes.fetch_add(size, std::memory_order_relaxed);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](size_t size, const std::nothrow_t& tag) noexcept {
  return operator new(size, tag);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace segserve {
namespace {

// Zero logits for every item: the forward pass without a model.
class ZeroRunner : public inference::BatchRunner {
 public:
  absl::StatusOr<inference::BatchOutput> Run(const inference::BatchInput& input) override {
    const size_t per_item =
        static_cast<size_t>(input.model->stored.config.classes) * input.height * input.width;
    auto logits = std::make_shared<std::vector<float>>(per_item * input.batch, 0.0f);
    inference::BatchOutput out;
    out.logits = logits->data();
    out.per_item = per_item;
    out.owner = std::move(logits);
    return out;
  }
};

struct Figures {
  double bytes = 0;
  double calls = 0;
};

Figures Measure(inference::SegmentationEngine& engine,
                const std::shared_ptr<const registry::LoadedModel>& model,
                const v1::Image& image, int requests) {
  Figures total;
  for (int i = 0; i < requests + 3; ++i) {  // 3 warm-up requests
    absl::Notification finished;
    const uint64_t bytes0 = g_bytes.load(), calls0 = g_calls.load();
    auto input = api::ImageFromProto(image, int64_t{1} << 26);
    if (!input.ok()) {
      std::fprintf(stderr, "ImageFromProto: %s\n", std::string(input.status().message()).c_str());
      std::exit(1);
    }
    v1::SegmentOptions options;
    options.set_mask_encoding(v1::MASK_PNG);
    engine.Segment(model, std::move(*input), {}, inference::Clock::time_point::max(), nullptr,
                   [&](absl::StatusOr<inference::SegmentResult> result) {
                     if (!result.ok()) {
                       std::fprintf(stderr, "Segment: %s\n",
                                    std::string(result.status().message()).c_str());
                       std::exit(1);
                     }
                     v1::SegmentResponse response;
                     if (!api::FillSegmentResponse(*result, options, &response).ok()) std::exit(1);
                     finished.Notify();
                   });
    finished.WaitForNotification();
    if (i >= 3) {
      total.bytes += static_cast<double>(g_bytes.load() - bytes0);
      total.calls += static_cast<double>(g_calls.load() - calls0);
    }
  }
  total.bytes /= requests;
  total.calls /= requests;
  return total;
}

int Main(int argc, char** argv) {
  int size = 256, requests = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--size") == 0) size = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--requests") == 0) requests = std::atoi(argv[i + 1]);
  }
  metrics::Metrics metrics;
  inference::BatchScheduler scheduler({}, metrics);
  ZeroRunner runner;
  inference::Executor executor("cpu", scheduler, runner, metrics);
  common::ThreadPool pool(2, 64);
  inference::SegmentationEngine engine({}, scheduler, pool);
  auto model = std::make_shared<registry::LoadedModel>();
  model->stored.name = "copies";
  model->stored.version = 1;
  model->stored.config.in_channels = 3;
  model->stored.config.classes = 2;

  // A 256x256 RGB image of noise (incompressible: the PNG is about as large as the raw).
  data::Image pixels = data::Image::Create(size, size, 3);
  std::mt19937 rng(1);
  for (auto& b : pixels.bytes) b = static_cast<uint8_t>(rng());
  v1::Image raw;
  raw.mutable_raw()->set_height(size);
  raw.mutable_raw()->set_width(size);
  raw.mutable_raw()->set_channels(3);
  raw.mutable_raw()->set_dtype(v1::DTYPE_UINT8);
  raw.mutable_raw()->set_data(std::string(pixels.bytes.begin(), pixels.bytes.end()));
  v1::Image png;
  png.set_encoded(*data::EncodePng(pixels));

  const double model_input = 3.0 * size * size * sizeof(float);
  std::printf("# %dx%d RGB, %d requests each; the model input alone is %.0f bytes\n", size,
              size, requests, model_input);
  std::printf("input,payload_bytes,allocated_bytes_per_request,allocations_per_request\n");
  const Figures r = Measure(engine, model, raw, requests);
  std::printf("raw,%zu,%.0f,%.1f\n", raw.raw().data().size(), r.bytes, r.calls);
  const Figures p = Measure(engine, model, png, requests);
  std::printf("png,%zu,%.0f,%.1f\n", png.encoded().size(), p.bytes, p.calls);
  scheduler.Shutdown();
  executor.Join();
  return 0;
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) { return segserve::Main(argc, argv); }
