#include "server/inference/batcher.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "prometheus/counter.h"
#include "server/common/log.h"
#include "server/model/servable_model.h"
#include "server/susceptibility/channel_means.h"
#include "server/susceptibility/drift_monitor.h"

namespace segserve::inference {
namespace {

prometheus::Histogram::BucketBoundaries BatchBuckets() {
  return {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64};
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Batcher::Batcher(const BatcherOptions& options, metrics::Metrics& metrics,
                 susceptibility::DriftMonitor* drift)
    : options_(options),
      drift_(drift),
      batch_size_(prometheus::BuildHistogram()
                      .Name("segserve_inference_batch_size")
                      .Help("Work items (images or tiles) per forward pass.")
                      .Register(*metrics.registry())
                      .Add({}, BatchBuckets())),
      queue_wait_(prometheus::BuildHistogram()
                      .Name("segserve_queue_wait_seconds")
                      .Help("Time a work item waited in the batcher queue.")
                      .Register(*metrics.registry())
                      .Add({}, metrics::LatencyBuckets())),
      compute_(prometheus::BuildHistogram()
                   .Name("segserve_compute_seconds")
                   .Help("Forward-pass time per batch.")
                   .Register(*metrics.registry())
                   .Add({}, metrics::LatencyBuckets())),
      queue_depth_(prometheus::BuildGauge()
                       .Name("segserve_queue_depth")
                       .Help("Work items waiting in the batcher, per model.")
                       .Register(*metrics.registry())),
      images_(prometheus::BuildCounter()
                  .Name("segserve_images_total")
                  .Help("Work items (whole images or tiles) run through a model.")
                  .Register(*metrics.registry())),
      pixels_(prometheus::BuildCounter()
                  .Name("segserve_pixels_total")
                  .Help("Pixels run through a model (tile overlaps counted once per tile).")
                  .Register(*metrics.registry())) {
  executor_ = std::thread([this] { Run(); });
}

Batcher::~Batcher() { Shutdown(); }

void Batcher::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (executor_.joinable()) executor_.join();
}

size_t Batcher::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

absl::Status Batcher::Submit(WorkItem item, bool continuation) {
  const std::string model_name = item.model->stored.name;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("server is shutting down");
    if (!continuation && total_ >= options_.max_queue) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "inference queue is full (", options_.max_queue, " items, --max_queue); retry later"));
    }
    item.enqueued = Clock::now();
    auto key = std::make_tuple(item.model->key(), item.height, item.width);
    queues_[key].items.push_back(std::move(item));
    ++total_;
  }
  queue_depth_.Add({{"model", model_name}}).Increment();
  cv_.notify_one();
  return absl::OkStatus();
}

void Batcher::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (stopping_) break;
    if (total_ == 0) {
      cv_.wait(lock);
      continue;
    }
    // The queue whose head has waited longest goes first (fairness across models/shapes).
    auto oldest = queues_.end();
    for (auto it = queues_.begin(); it != queues_.end(); ++it) {
      if (it->second.items.empty()) continue;
      if (oldest == queues_.end() ||
          it->second.items.front().enqueued < oldest->second.items.front().enqueued) {
        oldest = it;
      }
    }
    auto& items = oldest->second.items;
    const auto ready_at = items.front().enqueued + options_.max_queue_delay;
    if (static_cast<int>(items.size()) < options_.max_batch_size && Clock::now() < ready_at) {
      cv_.wait_until(lock, ready_at);
      continue;  // re-evaluate: more items may have arrived, or time is up.
    }
    std::vector<WorkItem> batch;
    while (!items.empty() && static_cast<int>(batch.size()) < options_.max_batch_size) {
      batch.push_back(std::move(items.front()));
      items.pop_front();
    }
    if (items.empty()) queues_.erase(oldest);
    total_ -= batch.size();
    lock.unlock();
    Execute(std::move(batch));
    lock.lock();
  }
  // Shutdown: fail what is left so no caller waits forever.
  for (auto& [key, queue] : queues_) {
    for (auto& item : queue.items) item.done(absl::UnavailableError("server is shutting down"));
  }
  queues_.clear();
  total_ = 0;
}

void Batcher::Execute(std::vector<WorkItem> batch) {
  const auto start = Clock::now();
  const std::string model_name = batch.front().model->stored.name;
  queue_depth_.Add({{"model", model_name}}).Decrement(static_cast<double>(batch.size()));
  // Drop expired and cancelled work before it costs compute.
  std::vector<WorkItem> live;
  live.reserve(batch.size());
  for (auto& item : batch) {
    if (item.cancelled && item.cancelled->load()) {
      item.done(absl::CancelledError("request cancelled by the client"));
    } else if (start >= item.deadline) {
      item.done(absl::DeadlineExceededError("deadline expired while queued; not computed"));
    } else {
      queue_wait_.Observe(Seconds(start - item.enqueued));
      live.push_back(std::move(item));
    }
  }
  if (live.empty()) return;
  const auto& model = *live.front().model;
  const int h = live.front().height, w = live.front().width;
  const int channels = model.stored.config.in_channels;
  const int64_t plane = static_cast<int64_t>(h) * w;
  torch::Tensor input = torch::empty({static_cast<int64_t>(live.size()), channels, h, w});
  float* dst = input.data_ptr<float>();
  for (size_t i = 0; i < live.size(); ++i) {
    std::memcpy(dst + i * channels * plane, live[i].input.data(),
                sizeof(float) * static_cast<size_t>(channels * plane));
  }
  const std::string key = model.key();
  std::vector<double> scores;
  absl::StatusOr<torch::Tensor> logits;
  if (drift_ != nullptr && drift_->HasReference(key)) {
    auto output = model.servable->ForwardWithTaps(input);
    if (output.ok()) {
      auto means = susceptibility::ChannelMeans(*output);
      if (means.ok()) scores = drift_->ObserveBatch(key, *means);
      logits = std::move(output->logits);
    } else {
      logits = output.status();
    }
  } else {
    logits = model.servable->Forward(input);
  }
  const double compute_seconds = Seconds(Clock::now() - start);
  batch_size_.Observe(static_cast<double>(live.size()));
  compute_.Observe(compute_seconds);
  if (!logits.ok()) {
    for (auto& item : live) item.done(logits.status());
    return;
  }
  torch::Tensor cpu = logits->to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t per_item = cpu.numel() / static_cast<int64_t>(live.size());
  const float* src = cpu.data_ptr<float>();
  images_.Add({{"model", model_name}}).Increment(static_cast<double>(live.size()));
  pixels_.Add({{"model", model_name}}).Increment(static_cast<double>(live.size() * plane));
  for (size_t i = 0; i < live.size(); ++i) {
    BatchResult result;
    result.logits.assign(src + i * per_item, src + (i + 1) * per_item);
    result.queue_seconds = Seconds(start - live[i].enqueued);
    result.compute_seconds = compute_seconds;
    result.batch_size = static_cast<int>(live.size());
    if (i < scores.size()) result.shift_score = scores[i];
    live[i].done(std::move(result));
  }
}

}  // namespace segserve::inference
