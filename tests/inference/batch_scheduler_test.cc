// The batching scheduler on its own, driven from the test thread: batches form by model,
// shape and priority, in arrival order; priorities, deadlines, cancellation, admission and
// shutdown. Only ready batches are asked for, so NextBatch never has to wait for time.
#include "server/inference/batch_scheduler.h"

#include <atomic>
#include <future>
#include <thread>

#include "gtest/gtest.h"
#include "tests/inference/fake_work.h"

namespace segserve::inference {
namespace {

using testing::FakeModel;
using testing::Outcomes;

constexpr auto kForever = std::chrono::hours(1);

std::vector<int> Ids(const std::vector<WorkItem>& batch) {
  std::vector<int> ids;
  for (const WorkItem& item : batch) ids.push_back(static_cast<int>(item.input.front()));
  return ids;
}

class BatchSchedulerTest : public ::testing::Test {
 protected:
  SchedulerOptions Options(int max_batch, std::chrono::microseconds delay) {
    SchedulerOptions options;
    options.max_batch_size = max_batch;
    options.max_queue_delay = delay;
    return options;
  }
  metrics::Metrics metrics_;
  Outcomes outcomes_;
  std::shared_ptr<const registry::LoadedModel> a_ = FakeModel("a");
  std::shared_ptr<const registry::LoadedModel> b_ = FakeModel("b");
};

TEST_F(BatchSchedulerTest, AFullBatchIsReadyAtOnceInArrivalOrder) {
  BatchScheduler scheduler(Options(4, kForever), metrics_);
  for (int id = 1; id <= 6; ++id) ASSERT_TRUE(scheduler.Submit(outcomes_.Item(id, a_)).ok());
  auto batch = scheduler.NextBatch();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(Ids(*batch), (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(scheduler.queued(), 2u);
}

TEST_F(BatchSchedulerTest, ItemsOfOtherModelsOrShapesAreNotBatchedTogether) {
  BatchScheduler scheduler(Options(8, std::chrono::microseconds(0)), metrics_);
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(1, a_)).ok());
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(2, b_)).ok());
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(3, a_, 8, 8)).ok());
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(4, a_)).ok());
  std::vector<std::vector<int>> batches;
  for (int i = 0; i < 3; ++i) batches.push_back(Ids(*scheduler.NextBatch()));
  // The queue whose head waited longest goes first.
  EXPECT_EQ(batches, (std::vector<std::vector<int>>{{1, 4}, {2}, {3}}));
}

TEST_F(BatchSchedulerTest, APartialBatchWaitsForTheQueueDelay) {
  BatchScheduler scheduler(Options(4, std::chrono::microseconds(1000)), metrics_);
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(1, a_)).ok());
  const auto before = Clock::now();
  auto batch = scheduler.NextBatch();
  EXPECT_GE(Clock::now() - before, std::chrono::microseconds(900));
  EXPECT_EQ(Ids(*batch), std::vector<int>{1});
}

TEST_F(BatchSchedulerTest, InteractiveBatchesRunBeforeBackgroundOnes) {
  BatchScheduler scheduler(Options(8, std::chrono::microseconds(0)), metrics_);
  WorkItem analysis = outcomes_.Item(1, a_);
  analysis.priority = Priority::kBackground;
  ASSERT_TRUE(scheduler.Submit(std::move(analysis)).ok());
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(2, a_)).ok());
  EXPECT_EQ(Ids(*scheduler.NextBatch()), std::vector<int>{2});
  EXPECT_EQ(Ids(*scheduler.NextBatch()), std::vector<int>{1});
}

// A background batch is the wait it imposes on a Segment request that arrives while it
// runs, so background batches are capped separately (and are ready once the cap is full);
// interactive batches still fill to max_batch_size.
TEST_F(BatchSchedulerTest, BackgroundBatchesAreCappedSeparately) {
  for (int cap : {1, 2}) {
    SchedulerOptions options = Options(8, std::chrono::microseconds(0));
    options.max_background_batch_size = cap;
    BatchScheduler scheduler(options, metrics_);
    for (int id = 1; id <= 3; ++id) {
      WorkItem analysis = outcomes_.Item(id, a_);
      analysis.priority = Priority::kBackground;
      ASSERT_TRUE(scheduler.Submit(std::move(analysis)).ok());
    }
    for (int id = 11; id <= 18; ++id) ASSERT_TRUE(scheduler.Submit(outcomes_.Item(id, a_)).ok());
    EXPECT_EQ(Ids(*scheduler.NextBatch()), (std::vector<int>{11, 12, 13, 14, 15, 16, 17, 18}));
    if (cap == 1) {
      EXPECT_EQ(Ids(*scheduler.NextBatch()), std::vector<int>{1});
      // A Segment item that arrives between background batches runs next.
      ASSERT_TRUE(scheduler.Submit(outcomes_.Item(21, a_)).ok());
      EXPECT_EQ(Ids(*scheduler.NextBatch()), std::vector<int>{21});
      EXPECT_EQ(Ids(*scheduler.NextBatch()), std::vector<int>{2});
      EXPECT_EQ(Ids(*scheduler.NextBatch()), std::vector<int>{3});
    } else {
      EXPECT_EQ(Ids(*scheduler.NextBatch()), (std::vector<int>{1, 2}));
      EXPECT_EQ(Ids(*scheduler.NextBatch()), std::vector<int>{3});
    }
    EXPECT_EQ(scheduler.queued(), 0u);
  }
}

// With a queue delay, a background queue is ready as soon as it holds a full (capped)
// batch, without waiting out the delay.
TEST_F(BatchSchedulerTest, AFullBackgroundBatchIsReadyWithoutTheDelay) {
  SchedulerOptions options = Options(8, kForever);
  options.max_background_batch_size = 2;
  BatchScheduler scheduler(options, metrics_);
  for (int id = 1; id <= 2; ++id) {
    WorkItem analysis = outcomes_.Item(id, a_);
    analysis.priority = Priority::kBackground;
    ASSERT_TRUE(scheduler.Submit(std::move(analysis)).ok());
  }
  EXPECT_EQ(Ids(*scheduler.NextBatch()), (std::vector<int>{1, 2}));
}

TEST_F(BatchSchedulerTest, ExpiredAndCancelledItemsAreAnsweredNotBatched) {
  BatchScheduler scheduler(Options(8, std::chrono::microseconds(0)), metrics_);
  auto cancelled = std::make_shared<CancelFlag>(false);
  WorkItem expired = outcomes_.Item(1, a_);
  expired.deadline = Clock::now() - std::chrono::seconds(1);
  WorkItem cancel = outcomes_.Item(2, a_);
  cancel.cancelled = cancelled;
  ASSERT_TRUE(scheduler.Submit(std::move(expired)).ok());
  ASSERT_TRUE(scheduler.Submit(std::move(cancel)).ok());
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(3, a_)).ok());
  cancelled->store(true);
  EXPECT_EQ(Ids(*scheduler.NextBatch()), std::vector<int>{3});
  auto outcomes = outcomes_.Get();
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(outcomes[1].code, absl::StatusCode::kCancelled);
}

TEST_F(BatchSchedulerTest, AdmissionIsBoundedPerPriorityAndContinuationsPass) {
  SchedulerOptions options = Options(8, kForever);
  options.max_queue = 2;
  options.max_background_queue = 1;
  BatchScheduler scheduler(options, metrics_);
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(1, a_)).ok());
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(2, a_)).ok());
  absl::Status full = scheduler.Submit(outcomes_.Item(3, a_));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("--max_queue"), std::string::npos) << full;
  EXPECT_TRUE(scheduler.Submit(outcomes_.Item(4, a_), /*continuation=*/true).ok());
  // The background bound is separate: a full analysis queue never refuses Segment, and
  // Segment traffic never refuses the analysis's first image.
  WorkItem first = outcomes_.Item(5, a_);
  first.priority = Priority::kBackground;
  WorkItem second = outcomes_.Item(6, a_);
  second.priority = Priority::kBackground;
  EXPECT_TRUE(scheduler.Submit(std::move(first)).ok());
  EXPECT_EQ(scheduler.Submit(std::move(second)).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(scheduler.queued(), 4u);
}

TEST_F(BatchSchedulerTest, OnIdleRunsOnceWhenTheQueueStaysEmptyAfterWork) {
  SchedulerOptions options = Options(8, std::chrono::microseconds(0));
  options.idle_after = std::chrono::milliseconds(10);
  std::atomic<int> idles{0};
  std::promise<void> first_idle;
  options.on_idle = [&] {
    if (idles.fetch_add(1) == 0) first_idle.set_value();
  };
  BatchScheduler scheduler(options, metrics_);
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(1, a_)).ok());
  EXPECT_EQ(Ids(*scheduler.NextBatch()), std::vector<int>{1});
  EXPECT_EQ(idles.load(), 0);

  // Nothing queued: the waiter idles once, on its own thread, then keeps waiting.
  std::optional<std::vector<WorkItem>> got;
  std::thread waiter([&] { got = scheduler.NextBatch(); });
  ASSERT_EQ(first_idle.get_future().wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(2, a_)).ok());
  waiter.join();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(Ids(*got), std::vector<int>{2});
  EXPECT_EQ(idles.load(), 1);
}

TEST_F(BatchSchedulerTest, ShutdownAnswersQueuedItemsAndWakesWaiters) {
  BatchScheduler scheduler(Options(8, kForever), metrics_);
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(1, a_)).ok());
  std::optional<std::vector<WorkItem>> got = std::vector<WorkItem>{};
  std::thread waiter([&] { got = scheduler.NextBatch(); });  // blocks: nothing is ready
  scheduler.Shutdown();
  waiter.join();
  EXPECT_FALSE(got.has_value());
  auto outcomes = outcomes_.Get();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(scheduler.Submit(outcomes_.Item(2, a_)).code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(scheduler.NextBatch().has_value());
}

}  // namespace
}  // namespace segserve::inference
