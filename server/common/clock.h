// File: server/common/clock.h — the time seam: production code asks a Clock, tests
// inject a ManualClock instead of sleeping.
#pragma once

#include <chrono>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace segserve::common {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point Now() const = 0;
  virtual std::chrono::system_clock::time_point WallNow() const = 0;
  // The process-wide real clock.
  static Clock* Real();
};

// Test double: time moves only when Advance is called.
class ManualClock : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override;
  std::chrono::system_clock::time_point WallNow() const override;
  void Advance(std::chrono::nanoseconds delta);

 private:
  mutable absl::Mutex mu_;
  std::chrono::steady_clock::time_point now_ ABSL_GUARDED_BY(mu_){};
  std::chrono::system_clock::time_point wall_ ABSL_GUARDED_BY(mu_){};
};

}  // namespace segserve::common
