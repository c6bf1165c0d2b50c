#include "server/scheduler/watch.h"

#include <utility>

#include "absl/time/clock.h"

namespace segserve::scheduler {

Subscription::Subscription(std::shared_ptr<WatchHub> hub, JobId job_id, size_t capacity)
    : hub_(std::move(hub)), job_id_(std::move(job_id)), capacity_(capacity < 2 ? 2 : capacity) {}

Subscription::~Subscription() { hub_->Unsubscribe(this); }

std::function<void()> Subscription::Push(const JobEvent& event, uint64_t seq) {
  absl::MutexLock lock(&mu_);
  if (done_ || terminal_buffered_ || seq <= last_seq_) return nullptr;
  last_seq_ = seq;
  if (!event.terminal && buffer_.size() >= capacity_) {
    // Drop the oldest intermediate event; a terminal event is always the last one.
    buffer_.pop_front();
    ++dropped_;
  }
  buffer_.push_back(event);
  terminal_buffered_ = event.terminal;
  cv_.SignalAll();
  return notify_;
}

std::function<void()> Subscription::End() {
  absl::MutexLock lock(&mu_);
  if (done_ || terminal_buffered_) return nullptr;
  terminal_buffered_ = true;  // Nothing more will be buffered.
  if (buffer_.empty()) done_ = true;
  cv_.SignalAll();
  return notify_;
}

std::optional<JobEvent> Subscription::TryNext() {
  absl::MutexLock lock(&mu_);
  if (done_ || buffer_.empty()) return std::nullopt;
  JobEvent event = std::move(buffer_.front());
  buffer_.pop_front();
  if (buffer_.empty() && terminal_buffered_) done_ = true;
  return event;
}

std::optional<JobEvent> Subscription::Next(std::chrono::milliseconds timeout) {
  const absl::Time deadline = absl::Now() + absl::FromChrono(timeout);
  absl::MutexLock lock(&mu_);
  while (!done_ && buffer_.empty()) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;  // timed out
  }
  if (done_ || buffer_.empty()) return std::nullopt;
  JobEvent event = std::move(buffer_.front());
  buffer_.pop_front();
  if (buffer_.empty() && terminal_buffered_) done_ = true;
  return event;
}

bool Subscription::done() const {
  absl::MutexLock lock(&mu_);
  return done_;
}

void Subscription::Close() {
  {
    absl::MutexLock lock(&mu_);
    done_ = true;
    buffer_.clear();
    cv_.SignalAll();
  }
  hub_->Unsubscribe(this);
}

int64_t Subscription::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

void Subscription::SetNotify(std::function<void()> notify) {
  bool pending;
  {
    absl::MutexLock lock(&mu_);
    notify_ = notify;
    pending = !buffer_.empty() || done_;
  }
  if (pending && notify) notify();
}

std::unique_ptr<Subscription> WatchHub::Subscribe(const JobEvent& initial, uint64_t seq) {
  std::unique_ptr<Subscription> subscription(
      new Subscription(shared_from_this(), initial.job.id, capacity_));
  subscription->Push(initial, seq);
  absl::MutexLock lock(&mu_);
  if (ended_) {
    subscription->End();
  } else if (!initial.terminal) {
    subscribers_.emplace(initial.job.id, subscription.get());
  }
  return subscription;
}

void WatchHub::Publish(const JobEvent& event, uint64_t seq) {
  std::vector<std::function<void()>> hooks;
  {
    absl::MutexLock lock(&mu_);
    auto [begin, end] = subscribers_.equal_range(event.job.id);
    for (auto it = begin; it != end;) {
      if (auto hook = it->second->Push(event, seq)) hooks.push_back(std::move(hook));
      // A terminal event ends the stream: nothing more goes to this subscriber.
      it = event.terminal ? subscribers_.erase(it) : std::next(it);
    }
  }
  for (auto& hook : hooks) hook();
}

void WatchHub::EndAll() {
  std::vector<std::function<void()>> hooks;
  {
    absl::MutexLock lock(&mu_);
    ended_ = true;
    for (auto& [id, subscription] : subscribers_) {
      if (auto hook = subscription->End()) hooks.push_back(std::move(hook));
    }
    subscribers_.clear();
  }
  for (auto& hook : hooks) hook();
}

std::vector<JobId> WatchHub::WatchedJobs() const {
  absl::MutexLock lock(&mu_);
  std::vector<JobId> ids;
  for (const auto& [id, subscription] : subscribers_) {
    if (ids.empty() || ids.back() != id) ids.push_back(id);
  }
  return ids;
}

size_t WatchHub::watchers(const JobId& job_id) const {
  absl::MutexLock lock(&mu_);
  return subscribers_.count(job_id);
}

void WatchHub::Unsubscribe(Subscription* subscription) {
  absl::MutexLock lock(&mu_);
  auto [begin, end] = subscribers_.equal_range(subscription->job_id_);
  for (auto it = begin; it != end; ++it) {
    if (it->second == subscription) {
      subscribers_.erase(it);
      return;
    }
  }
}

}  // namespace segserve::scheduler
