// File: tests/inference/fake_work.h — work items for the scheduler and executor tests: a
// loaded model without LibTorch behind it (the executor's BatchRunner seam is faked) and
// items whose callbacks record what they were told.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/inference/work_item.h"

namespace segserve::inference::testing {

inline std::shared_ptr<const registry::LoadedModel> FakeModel(const std::string& name,
                                                              int64_t version = 1) {
  auto model = std::make_shared<registry::LoadedModel>();
  model->stored.name = name;
  model->stored.version = version;
  model->stored.config.in_channels = 1;
  model->stored.config.classes = 2;
  return model;
}

// What the callbacks of a test's items were told, in the order they were called.
class Outcomes {
 public:
  struct Outcome {
    int id;
    absl::StatusCode code;
    std::vector<float> logits;
    int batch_size;
    double shift_score;
    bool has_tap_means;
    const float* logits_data;  // where the item's logits live (shared, not copied)
  };

  // An item of `model` with `height` x `width` inputs all equal to `id`.
  WorkItem Item(int id, std::shared_ptr<const registry::LoadedModel> model, int height = 4,
                int width = 4) {
    WorkItem item;
    item.model = std::move(model);
    item.height = height;
    item.width = width;
    item.input.assign(static_cast<size_t>(height) * width, static_cast<float>(id));
    item.done = [this, id](absl::StatusOr<BatchResult> result) {
      absl::MutexLock lock(&mu_);
      Outcome outcome{id, result.status().code(), {}, 0, -1, false, nullptr};
      if (result.ok()) {
        outcome.logits.assign(result->logits.begin(), result->logits.end());
        outcome.batch_size = result->batch_size;
        outcome.shift_score = result->shift_score;
        outcome.has_tap_means = result->tap_means.has_value();
        outcome.logits_data = result->logits.data();
      }
      outcomes_.push_back(std::move(outcome));
    };
    return item;
  }

  // Blocks until `n` callbacks ran (a bound on the wait, not a timer: fails after 60 s).
  bool WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outcomes_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(60));
  }

  std::vector<Outcome> Get() {
    absl::MutexLock lock(&mu_);
    return outcomes_;
  }

 private:
  absl::Mutex mu_;
  std::vector<Outcome> outcomes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace segserve::inference::testing
