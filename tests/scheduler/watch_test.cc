// Watch streams: progress then terminal, several watchers, leaving early, bounded buffers.
#include "server/scheduler/watch.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scheduler/scheduler.h"
#include "tests/scheduler/test_util.h"

namespace segserve::scheduler {
namespace {

using testing::Backend;
using testing::ScriptedRunner;
using testing::Spec;
using testing::StoreFactory;
using testing::WaitTerminal;

// Drains a subscription to its end; returns the events.
std::vector<JobEvent> Drain(Subscription& subscription) {
  std::vector<JobEvent> events;
  while (auto event = subscription.Next(std::chrono::seconds(60))) events.push_back(*event);
  return events;
}

class WatchTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(factory_.available().ok()) << factory_.available();
    auto store = factory_.Open();
    ASSERT_TRUE(store.ok()) << store.status();
    auto scheduler =
        Scheduler::Create(std::move(*store), {{JobKind::kTrain, runner_}}, {}, &clock_, nullptr);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = std::move(*scheduler);
  }

  StoreFactory factory_{GetParam()};
  common::ManualClock clock_;
  std::shared_ptr<ScriptedRunner> runner_ = std::make_shared<ScriptedRunner>();
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_P(WatchTest, WatchersGetProgressThenTheTerminalEvent) {
  auto job = scheduler_->Submit(JobKind::kTrain, Spec("a", 3, 1));
  ASSERT_TRUE(job.ok());
  runner_->WaitHolding("a");
  auto first = scheduler_->Watch(job->id);
  auto second = scheduler_->Watch(job->id);
  ASSERT_TRUE(first.ok() && second.ok());
  runner_->Release("a");
  for (auto* subscription : {first->get(), second->get()}) {
    std::vector<JobEvent> events = Drain(*subscription);
    ASSERT_GE(events.size(), 5u);  // snapshot, 3 progress reports, terminal.
    EXPECT_EQ(events.front().job.state, JobState::kRunning);
    std::vector<int> epochs;
    for (const JobEvent& e : events) {
      if (!e.terminal && e.job.progress.epoch > 0) epochs.push_back(e.job.progress.epoch);
    }
    EXPECT_THAT(epochs, ::testing::ElementsAre(1, 2, 3));
    EXPECT_TRUE(events.back().terminal);
    EXPECT_EQ(events.back().job.state, JobState::kSucceeded);
    EXPECT_TRUE(subscription->done());
  }
}

TEST_P(WatchTest, AWatcherLeavingEarlyDoesNotAffectTheJob) {
  auto job = scheduler_->Submit(JobKind::kTrain, Spec("a", 2, 2));
  runner_->WaitHolding("a");
  auto leaver = scheduler_->Watch(job->id);
  auto stayer = scheduler_->Watch(job->id);
  ASSERT_TRUE(leaver.ok() && stayer.ok());
  ASSERT_TRUE((*leaver)->Next().has_value());
  (*leaver)->Close();
  leaver->reset();  // Disconnected and gone.
  runner_->Release("a");
  std::vector<JobEvent> events = Drain(**stayer);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().job.state, JobState::kSucceeded);
}

TEST_P(WatchTest, AFinishedJobYieldsOneTerminalEvent) {
  auto job = scheduler_->Submit(JobKind::kTrain, Spec("a"));
  ASSERT_TRUE(WaitTerminal(*scheduler_, job->id).ok());
  auto subscription = scheduler_->Watch(job->id);
  ASSERT_TRUE(subscription.ok());
  std::vector<JobEvent> events = Drain(**subscription);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].terminal);
}

TEST_P(WatchTest, ShutdownEndsStreams) {
  auto job = scheduler_->Submit(JobKind::kTrain, Spec("a", 2, 2));
  runner_->WaitHolding("a");
  auto subscription = scheduler_->Watch(job->id);
  ASSERT_TRUE(subscription.ok());
  scheduler_->Shutdown();
  std::vector<JobEvent> events = Drain(**subscription);
  ASSERT_FALSE(events.empty());
  EXPECT_FALSE(events.back().terminal);
  EXPECT_EQ(events.back().job.state, JobState::kQueued);  // Re-queued, not lost.
  EXPECT_TRUE((*subscription)->done());
}

Job JobAt(int epoch) {
  Job job;
  job.id = "j";
  job.progress.epoch = epoch;
  return job;
}

TEST(WatchHub, SlowWatcherDropsIntermediateEventsButNeverTheTerminal) {
  auto hub = std::make_shared<WatchHub>(4);
  auto subscription = hub->Subscribe({JobAt(0), false, "snapshot"}, 1);
  for (int epoch = 1; epoch <= 100; ++epoch) hub->Publish({JobAt(epoch), false, ""}, epoch + 1);
  hub->Publish({JobAt(100), true, "done"}, 200);
  std::vector<JobEvent> events;
  while (auto event = subscription->TryNext()) events.push_back(*event);
  ASSERT_EQ(events.size(), 5u);  // The 4 newest progress events, then the terminal one.
  EXPECT_EQ(events[0].job.progress.epoch, 97);
  EXPECT_TRUE(events.back().terminal);
  EXPECT_EQ(subscription->dropped(), 97);
  EXPECT_TRUE(subscription->done());
}

TEST(WatchHub, StaleEventsAreIgnoredAndNotifyFires) {
  auto hub = std::make_shared<WatchHub>(8);
  auto subscription = hub->Subscribe({JobAt(0), false, ""}, 5);
  int notified = 0;
  subscription->SetNotify([&] { ++notified; });  // Fires at once: an event is buffered.
  hub->Publish({JobAt(1), false, ""}, 4);        // Older than the snapshot: ignored.
  hub->Publish({JobAt(2), false, ""}, 6);
  EXPECT_EQ(notified, 2);
  EXPECT_EQ(subscription->TryNext()->job.progress.epoch, 0);
  EXPECT_EQ(subscription->TryNext()->job.progress.epoch, 2);
  EXPECT_FALSE(subscription->TryNext().has_value());
  EXPECT_EQ(hub->watchers("j"), 1u);
  subscription.reset();
  EXPECT_EQ(hub->watchers("j"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Sqlite, WatchTest, ::testing::Values(Backend::kSqlite));
INSTANTIATE_TEST_SUITE_P(Postgres, WatchTest, ::testing::Values(Backend::kPostgres));

}  // namespace
}  // namespace segserve::scheduler
