// File: server/common/bounded_queue.h — a closable, bounded multi-producer/consumer queue.
// Producers never block: a full queue refuses at once (the service answers
// RESOURCE_EXHAUSTED), so memory stays bounded under overload.
#pragma once

#include <chrono>
#include <deque>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace segserve::common {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

  // False when the queue is full or closed; `item` is left untouched then.
  bool TryPush(T& item) {
    {
      absl::MutexLock lock(&mu_);
      if (closed_ || items_.size() >= capacity_) return false;
      items_.push_back(std::move(item));
    }
    cv_.Signal();
    return true;
  }

  // Blocks until an item arrives or the queue is closed and drained (nullopt).
  std::optional<T> Pop() {
    absl::MutexLock lock(&mu_);
    while (!closed_ && items_.empty()) cv_.Wait(&mu_);
    return PopLocked();
  }

  // Like Pop, but gives up at `deadline` (nullopt).
  std::optional<T> PopUntil(std::chrono::steady_clock::time_point deadline) {
    // absl::CondVar waits on absl::Time (wall clock): carry the steady time left over.
    const absl::Time until =
        absl::Now() + absl::FromChrono(deadline - std::chrono::steady_clock::now());
    absl::MutexLock lock(&mu_);
    while (!closed_ && items_.empty()) {
      if (cv_.WaitWithDeadline(&mu_, until)) break;  // timed out
    }
    return PopLocked();
  }

  // After Close, pushes fail and pops drain what is left, then return nullopt.
  void Close() {
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
    }
    cv_.SignalAll();
  }

  size_t size() const {
    absl::MutexLock lock(&mu_);
    return items_.size();
  }
  size_t capacity() const { return capacity_; }

 private:
  std::optional<T> PopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (items_.empty()) return std::nullopt;
    std::optional<T> item(std::move(items_.front()));
    items_.pop_front();
    return item;
  }

  const size_t capacity_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<T> items_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace segserve::common
