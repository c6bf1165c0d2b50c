// File: server/inference/work_item.h — the unit of work of the serving core: one image (or
// tile) for one loaded model version, with its priority, deadline, cancellation flag and
// completion callback; and what comes back. The BatchScheduler queues work items, an
// Executor runs them. Torch-free.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model_input/tap_means.h"
#include "server/registry/registry.h"

namespace segserve::inference {

using Clock = std::chrono::steady_clock;

// Shared by every work item of one request; set when the client cancels.
using CancelFlag = std::atomic<bool>;

// When several batches are ready, the lower value runs first. Interactive: Segment and
// SegmentStream. Background: analyses (Analyze, ANALYSIS jobs), which must not starve them.
enum class Priority : int { kInteractive = 0, kBackground = 1 };
inline constexpr int kPriorities = 2;
const char* PriorityName(Priority priority);

// One item's logits (classes x height x width floats) inside its batch's output, shared
// rather than copied: the view keeps the whole batch output alive.
class LogitsView {
 public:
  LogitsView() = default;
  LogitsView(std::shared_ptr<const void> owner, const float* data, size_t size)
      : owner_(std::move(owner)), data_(data), size_(size) {}
  const float* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const float* begin() const { return data_; }
  const float* end() const { return data_ + size_; }

 private:
  std::shared_ptr<const void> owner_;
  const float* data_ = nullptr;
  size_t size_ = 0;
};

struct BatchResult {
  LogitsView logits;        // classes x height x width
  double shift_score = -1;  // this item's domain-shift score; -1 without a reference
  double queue_seconds = 0;
  double compute_seconds = 0;  // the whole batch's forward time
  int batch_size = 0;
  // This item's tap channel means (a batch of one), when WorkItem::want_tap_means.
  std::optional<model_input::TapMeans> tap_means;
};

struct WorkItem {
  std::shared_ptr<const registry::LoadedModel> model;
  int height = 0;
  int width = 0;
  std::vector<float> input;  // in_channels x height x width, normalised
  Priority priority = Priority::kInteractive;
  // Whether the caller needs the item's tap channel means (analyses).
  bool want_tap_means = false;
  Clock::time_point deadline = Clock::time_point::max();
  std::shared_ptr<const CancelFlag> cancelled;
  // Called exactly once: on the executor thread after the forward pass, on the scheduler's
  // caller when the item is dropped (deadline, cancel) or refused at shutdown. Keep it short
  // (hand heavy work off to a pool).
  std::function<void(absl::StatusOr<BatchResult>)> done;
  Clock::time_point enqueued{};
};

}  // namespace segserve::inference
