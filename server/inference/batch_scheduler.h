// File: server/inference/batch_scheduler.h — the batching scheduler (Triton's split: it
// decides what runs together and when; executors only run). Work items queue per model
// version, input shape and priority; a queue is ready when it holds max_batch_size items or
// its oldest item has waited max_queue_delay. Executors take ready batches with NextBatch:
// the most urgent priority first, then the queue whose head waited longest (fairness across
// models and shapes). Expired and cancelled items are dropped when a batch is formed, before
// they cost compute. Admission is bounded per priority: a full queue answers
// RESOURCE_EXHAUSTED at once. Torch-free; owns no thread.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "server/inference/work_item.h"
#include "server/metrics/metrics.h"

namespace segserve::inference {

struct SchedulerOptions {
  int max_batch_size = 8;
  // Largest batch of background items (analyses, training evaluation). The executor runs
  // one batch at a time, so a Segment request that arrives while a background batch runs
  // waits for all of it: small background batches bound that wait to about one image's
  // forward pass (docs/PERFORMANCE.md, "Serving core before and after"). At most
  // max_batch_size.
  int max_background_batch_size = 1;
  std::chrono::microseconds max_queue_delay{2000};
  // Items admitted at once per priority (continuations excluded); beyond it Submit answers
  // RESOURCE_EXHAUSTED. Interactive: --max_queue. Background: analyses keep a window of
  // their images in flight, so a small bound suffices and never crowds out Segment.
  size_t max_queue = 256;
  size_t max_background_queue = 64;
  // Called once (on the thread asking for the next batch, without the lock) when the queue
  // has stayed empty for `idle_after` after work: the server gives the retained tensor heap
  // back there (model::ReleaseTensorMemory), so an idle server does not sit on its busiest
  // moment's memory, while a busy one keeps reusing it. Empty: never.
  std::function<void()> on_idle;
  std::chrono::milliseconds idle_after{1000};
};

class BatchScheduler {
 public:
  BatchScheduler(const SchedulerOptions& options, metrics::Metrics& metrics);
  // Calls Shutdown.
  ~BatchScheduler();
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // Queues `item`. `continuation` items belong to an already admitted request (further
  // tiles or images) and skip the admission limit, so accepted work is never refused
  // halfway. ResourceExhausted naming the flag when the queue is full; Unavailable after
  // shutdown; InvalidArgument for an item without a model or callback.
  absl::Status Submit(WorkItem item, bool continuation = false) ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until a batch is ready and returns it (1..max_batch_size items of one model
  // version, shape and priority, in arrival order; background batches hold at most
  // max_background_batch_size), or nullopt once shut down. Items
  // dropped on the way (cancelled: CANCELLED; deadline passed: DEADLINE_EXCEEDED) are
  // answered from this call, without the lock held.
  std::optional<std::vector<WorkItem>> NextBatch() ABSL_LOCKS_EXCLUDED(mu_);

  // Answers every queued item UNAVAILABLE and wakes NextBatch callers (they return nullopt);
  // later Submits answer UNAVAILABLE. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  size_t queued() const ABSL_LOCKS_EXCLUDED(mu_);
  const SchedulerOptions& options() const { return options_; }

 private:
  using Key = std::tuple<int, std::string, int, int>;  // priority, model key, height, width
  // The most items one batch of `priority` holds.
  int BatchLimit(int priority) const;
  // The ready queue to run next, or end(); `wake` becomes the earliest time a waiting queue
  // turns ready.
  std::map<Key, std::deque<WorkItem>>::iterator PickLocked(Clock::time_point now,
                                                            Clock::time_point* wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SchedulerOptions options_;
  prometheus::Histogram& queue_wait_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::map<Key, std::deque<WorkItem>> queues_ ABSL_GUARDED_BY(mu_);
  std::array<size_t, kPriorities> admitted_ ABSL_GUARDED_BY(mu_){};
  size_t total_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool worked_since_idle_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace segserve::inference
