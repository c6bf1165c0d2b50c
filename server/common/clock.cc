#include "server/common/clock.h"

namespace segserve::common {
namespace {
class RealClock : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override {
    return std::chrono::steady_clock::now();
  }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::now();
  }
};
}  // namespace

Clock* Clock::Real() {
  static RealClock clock;
  return &clock;
}

std::chrono::steady_clock::time_point ManualClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}
std::chrono::system_clock::time_point ManualClock::WallNow() const {
  absl::MutexLock lock(&mu_);
  return wall_;
}
void ManualClock::Advance(std::chrono::nanoseconds delta) {
  absl::MutexLock lock(&mu_);
  now_ += delta;
  wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(delta);
}

}  // namespace segserve::common
