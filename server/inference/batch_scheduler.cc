#include "server/inference/batch_scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace segserve::inference {
namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

const char* PriorityName(Priority priority) {
  switch (priority) {
    case Priority::kInteractive: return "interactive";
    case Priority::kBackground: return "background";
  }
  return "unknown";
}

BatchScheduler::BatchScheduler(const SchedulerOptions& options, metrics::Metrics& metrics)
    : options_(options),
      queue_wait_(prometheus::BuildHistogram()
                      .Name("segserve_queue_wait_seconds")
                      .Help("Time a work item waited in the batcher queue.")
                      .Register(*metrics.registry())
                      .Add({}, metrics::LatencyBuckets())),
      queue_depth_(prometheus::BuildGauge()
                       .Name("segserve_queue_depth")
                       .Help("Work items waiting in the batcher, per model.")
                       .Register(*metrics.registry())) {}

BatchScheduler::~BatchScheduler() { Shutdown(); }

size_t BatchScheduler::queued() const {
  absl::MutexLock lock(&mu_);
  return total_;
}

absl::Status BatchScheduler::Submit(WorkItem item, bool continuation) {
  if (item.model == nullptr || !item.done) {
    return absl::InvalidArgumentError("work item needs a model and a callback");
  }
  const std::string model_name = item.model->stored.name;
  const int priority = static_cast<int>(item.priority);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("server is shutting down");
    const size_t limit = item.priority == Priority::kInteractive ? options_.max_queue
                                                                 : options_.max_background_queue;
    if (!continuation && admitted_[priority] >= limit) {
      if (item.priority == Priority::kInteractive) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "inference queue is full (", limit, " items, --max_queue); retry later"));
      }
      return absl::ResourceExhaustedError(
          absl::StrCat("background inference queue is full (", limit, " items); retry later"));
    }
    item.enqueued = Clock::now();
    Key key{priority, item.model->key(), item.height, item.width};
    queues_[key].push_back(std::move(item));
    ++admitted_[priority];
    ++total_;
    cv_.Signal();
  }
  queue_depth_.Add({{"model", model_name}}).Increment();
  return absl::OkStatus();
}

int BatchScheduler::BatchLimit(int priority) const {
  if (priority == static_cast<int>(Priority::kInteractive)) return options_.max_batch_size;
  return std::max(1, std::min(options_.max_batch_size, options_.max_background_batch_size));
}

std::map<BatchScheduler::Key, std::deque<WorkItem>>::iterator BatchScheduler::PickLocked(
    Clock::time_point now, Clock::time_point* wake) {
  auto best = queues_.end();
  *wake = Clock::time_point::max();
  for (auto it = queues_.begin(); it != queues_.end(); ++it) {
    const std::deque<WorkItem>& items = it->second;
    const Clock::time_point ready_at = items.front().enqueued + options_.max_queue_delay;
    const bool ready =
        static_cast<int>(items.size()) >= BatchLimit(std::get<0>(it->first)) || now >= ready_at;
    if (!ready) {
      *wake = std::min(*wake, ready_at);
      continue;
    }
    // Keys sort by priority first: the first ready priority wins; within it the oldest head.
    if (best == queues_.end()) {
      best = it;
    } else if (std::get<0>(it->first) == std::get<0>(best->first) &&
               items.front().enqueued < best->second.front().enqueued) {
      best = it;
    }
  }
  return best;
}

std::optional<std::vector<WorkItem>> BatchScheduler::NextBatch() {
  std::vector<WorkItem> dropped;
  std::vector<WorkItem> batch;
  std::map<std::string, double> dequeued;  // model name -> items, for the depth gauge
  bool idle = false;
  {
    absl::MutexLock lock(&mu_);
    while (batch.empty()) {
      if (stopping_) return std::nullopt;
      if (total_ == 0) {
        if (!worked_since_idle_ || !options_.on_idle) {
          cv_.Wait(&mu_);
          continue;
        }
        // WaitWithTimeout is true when the wait timed out: idle since the last batch.
        if (cv_.WaitWithTimeout(&mu_, absl::FromChrono(options_.idle_after)) && total_ == 0 &&
            !stopping_) {
          worked_since_idle_ = false;
          idle = true;
          break;  // call on_idle without the lock
        }
        continue;
      }
      const Clock::time_point now = Clock::now();
      Clock::time_point wake;
      auto it = PickLocked(now, &wake);
      if (it == queues_.end()) {
        cv_.WaitWithTimeout(&mu_, absl::FromChrono(wake - now));
        continue;  // re-evaluate: more items may have arrived, or time is up
      }
      std::deque<WorkItem>& items = it->second;
      const int priority = std::get<0>(it->first);
      const int limit = BatchLimit(priority);
      while (!items.empty() && static_cast<int>(batch.size()) < limit) {
        WorkItem item = std::move(items.front());
        items.pop_front();
        --admitted_[priority];
        --total_;
        dequeued[item.model->stored.name] += 1;
        if ((item.cancelled && item.cancelled->load()) || now >= item.deadline) {
          dropped.push_back(std::move(item));
        } else {
          queue_wait_.Observe(Seconds(now - item.enqueued));
          batch.push_back(std::move(item));
        }
      }
      if (items.empty()) queues_.erase(it);
      worked_since_idle_ = true;
      if (!dropped.empty()) break;  // answer the dropped ones without the lock first
    }
  }
  for (const auto& [model, count] : dequeued) queue_depth_.Add({{"model", model}}).Decrement(count);
  for (WorkItem& item : dropped) {
    if (item.cancelled && item.cancelled->load()) {
      item.done(absl::CancelledError("request cancelled by the client"));
    } else {
      item.done(absl::DeadlineExceededError("deadline expired while queued; not computed"));
    }
  }
  if (idle) options_.on_idle();
  if (batch.empty()) return NextBatch();
  return batch;
}

void BatchScheduler::Shutdown() {
  std::map<Key, std::deque<WorkItem>> left;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    left.swap(queues_);
    admitted_ = {};
    total_ = 0;
    cv_.SignalAll();
  }
  // Fail what is left so no caller waits forever.
  for (auto& [key, items] : left) {
    queue_depth_.Add({{"model", items.front().model->stored.name}})
        .Decrement(static_cast<double>(items.size()));
    for (WorkItem& item : items) item.done(absl::UnavailableError("server is shutting down"));
  }
}

}  // namespace segserve::inference
