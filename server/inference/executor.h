// File: server/inference/executor.h — one executor per device: owns the device thread, takes
// ready batches from the BatchScheduler and runs their forward pass through a BatchRunner,
// nothing else (no decoding, blending or encoding: callbacks hand that to a pool). Executed
// batches are shown to BatchObservers (drift monitoring, registered by the composition root),
// so this library knows nothing of susceptibility, the job scheduler or SQLite.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "server/inference/batch_scheduler.h"
#include "server/inference/work_item.h"
#include "server/metrics/metrics.h"
#include "server/model_input/tap_means.h"

namespace segserve::inference {

// One forward pass: `batch` items of `channels` x `height` x `width` normalised floats,
// contiguous, item after item.
struct BatchInput {
  const registry::LoadedModel* model = nullptr;
  int batch = 0;
  int channels = 0;
  int height = 0;
  int width = 0;
  const float* data = nullptr;
  bool tap_means = false;  // also compute the taps' per-image channel means
};

struct BatchOutput {
  // batch x per_item logits, contiguous; `owner` keeps them alive (a CPU tensor, a vector).
  std::shared_ptr<const void> owner;
  const float* logits = nullptr;
  size_t per_item = 0;
  model_input::TapMeans tap_means;  // when BatchInput::tap_means
};

// The seam the executor runs a batch through. Production: TorchBatchRunner (LibTorch);
// tests: a fake model. Called from one executor thread at a time.
class BatchRunner {
 public:
  virtual ~BatchRunner() = default;
  virtual absl::StatusOr<BatchOutput> Run(const BatchInput& input) = 0;
};

// Sees every executed batch, on the executor thread (keep it cheap: O(channels) per item).
class BatchObserver {
 public:
  virtual ~BatchObserver() = default;
  // Whether batches of `model` should compute tap channel means for this observer.
  virtual bool WantsTapMeans(const registry::LoadedModel& model) const = 0;
  // After a successful forward pass with tap means: returns one domain-shift score per item
  // (or none).
  virtual std::vector<double> OnBatch(const registry::LoadedModel& model,
                                      const model_input::TapMeans& means) = 0;
};

class Executor {
 public:
  // Starts the device thread. `observer` may be null; none of the references is owned.
  Executor(std::string device, BatchScheduler& scheduler, BatchRunner& runner,
           metrics::Metrics& metrics, BatchObserver* observer = nullptr);
  // Shuts the scheduler down (if not yet) and joins the device thread.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Joins the device thread once the scheduler is shut down. Idempotent.
  void Join();

  const std::string& device() const { return device_; }

 private:
  void Run();
  void Execute(std::vector<WorkItem> batch);

  const std::string device_;
  BatchScheduler& scheduler_;
  BatchRunner& runner_;
  BatchObserver* const observer_;
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& compute_;
  prometheus::Family<prometheus::Counter>& images_;
  prometheus::Family<prometheus::Counter>& pixels_;
  std::vector<float> staging_;  // the batch input, reused (device thread only)
  std::thread thread_;
};

}  // namespace segserve::inference
