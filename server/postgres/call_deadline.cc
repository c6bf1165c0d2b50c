#include "server/postgres/call_deadline.h"

#include <sys/socket.h>

#include <map>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace segserve::postgres {
namespace {

using Clock = std::chrono::steady_clock;

class Watchdog {
 public:
  static Watchdog& Instance() {
    static Watchdog* const watchdog = new Watchdog();  // never destroyed: its thread runs on
    return *watchdog;
  }

  uint64_t Arm(int fd, Clock::time_point deadline) {
    absl::MutexLock lock(&mu_);
    const uint64_t token = ++last_token_;
    armed_[token] = Entry{fd, deadline, false};
    rearmed_ = true;
    if (!started_) {
      started_ = true;
      std::thread([this] { Loop(); }).detach();
    }
    return token;
  }

  bool Disarm(uint64_t token) {
    absl::MutexLock lock(&mu_);
    auto it = armed_.find(token);
    if (it == armed_.end()) return false;
    const bool fired = it->second.fired;
    armed_.erase(it);
    return fired;
  }

 private:
  struct Entry {
    int fd;
    Clock::time_point deadline;
    bool fired;
  };

  void Loop() {
    absl::MutexLock lock(&mu_);
    while (true) {
      // Deadlines are steady-clock times, checked here against the steady clock: a wait
      // that ends early (absl's waits follow its own clock) only waits again.
      std::optional<Clock::time_point> next;
      const Clock::time_point now = Clock::now();
      for (auto& [token, entry] : armed_) {
        if (entry.fired) continue;
        if (entry.deadline <= now) {
          // The caller disarms (under mu_) before it can close the socket: `fd` is still
          // the call's socket here.
          ::shutdown(entry.fd, SHUT_RDWR);
          entry.fired = true;
        } else if (!next || entry.deadline < *next) {
          next = entry.deadline;
        }
      }
      // Woken by a new deadline (it may be the earliest) or at the earliest one.
      rearmed_ = false;
      if (next) {
        mu_.AwaitWithTimeout(absl::Condition(&rearmed_), absl::FromChrono(*next - now));
      } else {
        mu_.Await(absl::Condition(&rearmed_));
      }
    }
  }

  absl::Mutex mu_;
  std::map<uint64_t, Entry> armed_ ABSL_GUARDED_BY(mu_);
  uint64_t last_token_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool rearmed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

CallDeadline::CallDeadline(int fd, std::chrono::steady_clock::duration timeout) {
  if (fd < 0) return;
  token_ = Watchdog::Instance().Arm(fd, Clock::now() + timeout);
}

CallDeadline::~CallDeadline() { Disarm(); }

bool CallDeadline::Disarm() {
  if (token_ != 0) {
    fired_ = Watchdog::Instance().Disarm(token_);
    token_ = 0;
  }
  return fired_;
}

}  // namespace segserve::postgres
