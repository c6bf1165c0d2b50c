// File: server/scheduler/watch.h — fan-out of job events to watchers. Each watcher owns
// a Subscription with a bounded buffer: when it is full, the oldest intermediate
// (progress) event is dropped; the terminal event is never dropped. A watcher that
// closes or is destroyed detaches without affecting the job.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/scheduler/job.h"

namespace segserve::scheduler {

class WatchHub;

class Subscription {
 public:
  ~Subscription();  // Detaches from the hub.
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // The oldest buffered event, without blocking; nullopt when none is buffered.
  std::optional<JobEvent> TryNext();
  // Blocks until an event is buffered, the stream ended (terminal event consumed or
  // Close), or `timeout` passed; nullopt in the latter two cases.
  std::optional<JobEvent> Next(std::chrono::milliseconds timeout = std::chrono::hours(24));
  // True once the terminal event was consumed or Close was called.
  bool done() const;
  // Stops delivery; buffered events are discarded. Idempotent.
  void Close();
  // Intermediate events dropped because the buffer was full.
  int64_t dropped() const;

  // Called (from a scheduler thread, with no scheduler lock held) each time an event is
  // buffered: the hook for gRPC reactors, which then call TryNext when ready to write.
  // Must not block and must not call back into the Scheduler. It may run once more
  // concurrently with (or just after) Close(), so keep what it captures alive until the
  // Subscription is destroyed (a reactor: capture state held by shared_ptr).
  void SetNotify(std::function<void()> notify);

 private:
  friend class WatchHub;
  Subscription(std::shared_ptr<WatchHub> hub, JobId job_id, size_t capacity);
  // Buffers `event` unless stale (seq not newer) or closed; returns the notify hook to run.
  std::function<void()> Push(const JobEvent& event, uint64_t seq);
  // Ends the stream without a terminal event (scheduler shutdown).
  std::function<void()> End();

  const std::shared_ptr<WatchHub> hub_;
  const JobId job_id_;
  const size_t capacity_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<JobEvent> buffer_ ABSL_GUARDED_BY(mu_);
  uint64_t last_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool terminal_buffered_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void()> notify_ ABSL_GUARDED_BY(mu_);
};

// Shared by the Scheduler and its Subscriptions, so a Subscription may outlive the
// Scheduler.
class WatchHub : public std::enable_shared_from_this<WatchHub> {
 public:
  explicit WatchHub(size_t capacity_per_watcher) : capacity_(capacity_per_watcher) {}

  // A subscription whose first event is `initial` (the job's current snapshot).
  std::unique_ptr<Subscription> Subscribe(const JobEvent& initial, uint64_t seq);
  // Delivers to every subscriber of event.job.id. `seq` orders events of one job: an
  // event older than one already delivered is ignored, so publishing outside the
  // scheduler's lock cannot reorder a stream.
  void Publish(const JobEvent& event, uint64_t seq);
  size_t watchers(const JobId& job_id) const;
  // The jobs that have at least one watcher.
  std::vector<JobId> WatchedJobs() const;
  // Ends every stream (Next returns nullopt once drained); later Subscribe calls get an
  // ended stream holding only their initial event.
  void EndAll();

 private:
  friend class Subscription;
  void Unsubscribe(Subscription* subscription);

  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::multimap<JobId, Subscription*> subscribers_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace segserve::scheduler
