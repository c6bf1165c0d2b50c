#include "server/inference/executor.h"

#include <cstring>
#include <utility>

namespace segserve::inference {
namespace {

prometheus::Histogram::BucketBoundaries BatchBuckets() {
  return {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64};
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Executor::Executor(std::string device, BatchScheduler& scheduler, BatchRunner& runner,
                   metrics::Metrics& metrics, BatchObserver* observer)
    : device_(std::move(device)),
      scheduler_(scheduler),
      runner_(runner),
      observer_(observer),
      batch_size_(prometheus::BuildHistogram()
                      .Name("segserve_inference_batch_size")
                      .Help("Work items (images or tiles) per forward pass.")
                      .Register(*metrics.registry())
                      .Add({}, BatchBuckets())),
      compute_(prometheus::BuildHistogram()
                   .Name("segserve_compute_seconds")
                   .Help("Forward-pass time per batch.")
                   .Register(*metrics.registry())
                   .Add({}, metrics::LatencyBuckets())),
      images_(prometheus::BuildCounter()
                  .Name("segserve_images_total")
                  .Help("Work items (whole images or tiles) run through a model.")
                  .Register(*metrics.registry())),
      pixels_(prometheus::BuildCounter()
                  .Name("segserve_pixels_total")
                  .Help("Pixels run through a model (tile overlaps counted once per tile).")
                  .Register(*metrics.registry())) {
  thread_ = std::thread([this] { Run(); });
}

Executor::~Executor() {
  scheduler_.Shutdown();
  Join();
}

void Executor::Join() {
  if (thread_.joinable()) thread_.join();
}

void Executor::Run() {
  while (std::optional<std::vector<WorkItem>> batch = scheduler_.NextBatch()) {
    Execute(std::move(*batch));
  }
}

void Executor::Execute(std::vector<WorkItem> batch) {
  const auto start = Clock::now();
  const registry::LoadedModel& model = *batch.front().model;
  const int h = batch.front().height, w = batch.front().width;
  const int channels = model.stored.config.in_channels;
  const size_t item_floats = static_cast<size_t>(channels) * h * w;
  BatchInput input;
  input.model = &model;
  input.batch = static_cast<int>(batch.size());
  input.channels = channels;
  input.height = h;
  input.width = w;
  bool want_means = false;
  for (const WorkItem& item : batch) want_means = want_means || item.want_tap_means;
  // Live traffic only: an analysis's images say nothing about what the model is served.
  const bool observe = observer_ != nullptr && batch.front().priority == Priority::kInteractive &&
                       observer_->WantsTapMeans(model);
  input.tap_means = want_means || observe;
  for (WorkItem& item : batch) {
    if (item.input.size() != item_floats) {
      item.done(absl::InternalError("work item input does not match its model and shape"));
      item.done = nullptr;
    }
  }
  if (batch.size() == 1) {
    input.data = batch.front().input.data();  // no staging copy for a batch of one
  } else {
    staging_.resize(item_floats * batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) {
        std::memcpy(staging_.data() + i * item_floats, batch[i].input.data(),
                    sizeof(float) * item_floats);
      }
    }
    input.data = staging_.data();
  }
  absl::StatusOr<BatchOutput> output = runner_.Run(input);
  std::vector<double> scores;
  if (output.ok() && observe) scores = observer_->OnBatch(model, output->tap_means);
  const double compute_seconds = Seconds(Clock::now() - start);
  batch_size_.Observe(static_cast<double>(batch.size()));
  compute_.Observe(compute_seconds);
  if (!output.ok()) {
    for (WorkItem& item : batch) {
      if (item.done) item.done(output.status());
    }
    return;
  }
  const std::string& model_name = model.stored.name;
  images_.Add({{"model", model_name}}).Increment(static_cast<double>(batch.size()));
  pixels_.Add({{"model", model_name}})
      .Increment(static_cast<double>(batch.size()) * static_cast<double>(h) * w);
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].done) continue;
    BatchResult result;
    result.logits =
        LogitsView(output->owner, output->logits + i * output->per_item, output->per_item);
    result.queue_seconds = Seconds(start - batch[i].enqueued);
    result.compute_seconds = compute_seconds;
    result.batch_size = static_cast<int>(batch.size());
    if (i < scores.size()) result.shift_score = scores[i];
    if (batch[i].want_tap_means) {
      result.tap_means = model_input::ImageOf(output->tap_means, static_cast<int>(i));
    }
    batch[i].done(std::move(result));
  }
}

}  // namespace segserve::inference
