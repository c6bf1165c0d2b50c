#include "server/common/thread_pool.h"

namespace segserve::common {

ThreadPool::ThreadPool(int threads, size_t queue_capacity) : tasks_(queue_capacity) {
  workers_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) {
    workers_.emplace_back([this] {
      while (auto task = tasks_.Pop()) (*task)();
    });
  }
}

ThreadPool::~ThreadPool() {
  tasks_.Close();
  for (auto& worker : workers_) worker.join();
}

bool ThreadPool::TrySchedule(std::function<void()> task) { return tasks_.TryPush(task); }

}  // namespace segserve::common
