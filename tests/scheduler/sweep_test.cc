#include "server/scheduler/sweep.h"

#include "gtest/gtest.h"

namespace segserve::scheduler {
namespace {
TEST(SweepOutcome, AllSucceeded) {
  std::vector<Job> children(2);
  for (auto& c : children) c.state = JobState::kSucceeded;
  EXPECT_EQ(SweepOutcomeOf(children, false).state, JobState::kSucceeded);
}
}  // namespace
}  // namespace segserve::scheduler
