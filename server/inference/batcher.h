// File: server/inference/batcher.h — the dynamic batcher and the executor that owns a
// device. Work items for the same model version and input shape wait up to
// max_queue_delay for companions and run as one batch of up to max_batch_size; one
// executor thread per device runs every forward pass (torch never runs on gRPC
// threads). Expired or cancelled items are dropped before compute.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "server/metrics/metrics.h"
#include "server/registry/registry.h"

namespace segserve::susceptibility {
class DriftMonitor;
}

namespace segserve::inference {

using Clock = std::chrono::steady_clock;

// Shared by every work item of one request; set when the client cancels.
using CancelFlag = std::atomic<bool>;

struct BatchResult {
  std::vector<float> logits;  // classes x height x width
  double shift_score = -1;    // this item's domain-shift score; -1 without a reference
  double queue_seconds = 0;
  double compute_seconds = 0;  // the whole batch's forward time
  int batch_size = 0;
};

struct WorkItem {
  std::shared_ptr<const registry::LoadedModel> model;
  int height = 0;
  int width = 0;
  std::vector<float> input;  // in_channels x height x width, normalised
  Clock::time_point deadline = Clock::time_point::max();
  std::shared_ptr<const CancelFlag> cancelled;
  // Called exactly once, on the executor thread: keep it short (hand off heavy work).
  std::function<void(absl::StatusOr<BatchResult>)> done;
  Clock::time_point enqueued{};
};

struct BatcherOptions {
  int max_batch_size = 8;
  std::chrono::microseconds max_queue_delay{2000};
  // Items admitted at once across all models; beyond it Submit answers RESOURCE_EXHAUSTED.
  size_t max_queue = 256;
};

class Batcher {
 public:
  // `drift` (optional, not owned): models with reference statistics run with feature taps
  // and every item updates the live domain-shift monitor.
  Batcher(const BatcherOptions& options, metrics::Metrics& metrics,
          susceptibility::DriftMonitor* drift = nullptr);
  // Calls Shutdown.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues `item`. `continuation` items belong to an already admitted request (further
  // tiles) and skip the admission limit, so accepted work is never refused halfway.
  // ResourceExhausted when the queue is full; Unavailable after shutdown.
  absl::Status Submit(WorkItem item, bool continuation = false);

  // Fails every queued item with UNAVAILABLE and joins the executor; later Submits answer
  // UNAVAILABLE. Idempotent. The object stays usable for callers still holding it.
  void Shutdown();

  size_t queued() const;
  const BatcherOptions& options() const { return options_; }

 private:
  struct Queue {
    std::deque<WorkItem> items;
  };
  void Run();
  void Execute(std::vector<WorkItem> batch);

  const BatcherOptions options_;
  susceptibility::DriftMonitor* const drift_;
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& queue_wait_;
  prometheus::Histogram& compute_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Counter>& images_;
  prometheus::Family<prometheus::Counter>& pixels_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // (model key, height, width) -> queue.
  std::map<std::tuple<std::string, int, int>, Queue> queues_ ABSL_GUARDED_BY(mu_);
  size_t total_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread executor_;
};

}  // namespace segserve::inference
