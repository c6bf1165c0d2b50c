#include "server/common/bounded_queue.h"

#include <thread>

#include "gtest/gtest.h"
#include "server/common/thread_pool.h"

namespace segserve::common {
namespace {

TEST(BoundedQueue, RefusesWhenFullAndKeepsTheItem) {
  BoundedQueue<std::string> queue(2);
  std::string a = "a", b = "b", c = "c";
  EXPECT_TRUE(queue.TryPush(a));
  EXPECT_TRUE(queue.TryPush(b));
  EXPECT_FALSE(queue.TryPush(c));
  EXPECT_EQ(c, "c");
  EXPECT_EQ(*queue.Pop(), "a");
}

TEST(BoundedQueue, CloseDrainsThenEnds) {
  BoundedQueue<int> queue(4);
  int one = 1;
  queue.TryPush(one);
  queue.Close();
  int two = 2;
  EXPECT_FALSE(queue.TryPush(two));
  EXPECT_EQ(*queue.Pop(), 1);
  EXPECT_FALSE(queue.Pop().has_value());
}

TEST(BoundedQueue, PopUntilTimesOutOnEmptyQueue) {
  BoundedQueue<int> queue(1);
  EXPECT_FALSE(queue.PopUntil(std::chrono::steady_clock::now()).has_value());
}

TEST(ThreadPool, RunsEveryScheduledTaskBeforeDestruction) {
  std::atomic<int> count{0};
  {
    ThreadPool pool(2, 100);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(pool.TrySchedule([&] { ++count; }));
  }
  EXPECT_EQ(count.load(), 50);
}

}  // namespace
}  // namespace segserve::common
