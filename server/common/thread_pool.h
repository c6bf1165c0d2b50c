// File: server/common/thread_pool.h — a fixed pool of worker threads over a bounded queue.
#pragma once

#include <functional>
#include <thread>
#include <vector>

#include "server/common/bounded_queue.h"

namespace segserve::common {

class ThreadPool {
 public:
  // `threads` workers; at most `queue_capacity` tasks wait.
  ThreadPool(int threads, size_t queue_capacity);
  // Runs every task already queued, then joins.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // False when the queue is full or the pool is shutting down.
  bool TrySchedule(std::function<void()> task);
  int size() const { return static_cast<int>(workers_.size()); }

 private:
  BoundedQueue<std::function<void()>> tasks_;
  std::vector<std::thread> workers_;
};

}  // namespace segserve::common
