// The executor against a fake model (the BatchRunner seam): every item gets its own slice
// of the batch output, in order; a failed forward pass fails the whole batch; observers see
// interactive batches and hand back per-item scores; tap means reach items that ask for
// them; while the device is busy, queued interactive work overtakes background work;
// shutdown answers what is still queued. A gate inside the fake holds the device thread so
// that queues fill deterministically.
#include "server/inference/executor.h"

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/inference/fake_work.h"

namespace segserve::inference {
namespace {

using testing::FakeModel;
using testing::Outcomes;

// Logits of item i: `classes` planes, every value = 10 * (its first input value) + class.
class FakeRunner : public BatchRunner {
 public:
  absl::StatusOr<BatchOutput> Run(const BatchInput& input) override {
    {
      absl::MutexLock lock(&mu_);
      ++runs_;
      batches_.push_back({});
      inputs_.push_back(input.data);
      const size_t item_floats = static_cast<size_t>(input.channels) * input.height * input.width;
      for (int i = 0; i < input.batch; ++i) {
        batches_.back().push_back(static_cast<int>(input.data[i * item_floats]));
      }
      if (hold_first_ && runs_ == 1) {
        running_.Notify();
        mu_.Await(absl::Condition(&released_));
      }
    }
    if (!fail_.ok()) return fail_;
    const int classes = input.model->stored.config.classes;
    const size_t plane = static_cast<size_t>(input.height) * input.width;
    const size_t item_floats = static_cast<size_t>(input.channels) * plane;
    auto logits = std::make_shared<std::vector<float>>();
    for (int i = 0; i < input.batch; ++i) {
      for (int c = 0; c < classes; ++c) {
        logits->insert(logits->end(), plane, 10 * input.data[i * item_floats] + c);
      }
    }
    BatchOutput out;
    out.logits = logits->data();
    {
      absl::MutexLock lock(&mu_);
      outputs_.push_back(logits->data());
    }
    out.per_item = classes * plane;
    out.owner = logits;
    if (input.tap_means) {
      model_input::LayerMeans layer{"encoder.stem", input.batch, 1, {}};
      for (int i = 0; i < input.batch; ++i) layer.values.push_back(input.data[i * item_floats]);
      out.tap_means.push_back(std::move(layer));
    }
    return out;
  }

  void HoldFirstBatch() { hold_first_ = true; }
  void WaitUntilRunning() { running_.WaitForNotification(); }
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }
  void FailWith(absl::Status status) { fail_ = std::move(status); }
  std::vector<const float*> inputs() {
    absl::MutexLock lock(&mu_);
    return inputs_;
  }
  std::vector<const float*> outputs() {
    absl::MutexLock lock(&mu_);
    return outputs_;
  }
  std::vector<std::vector<int>> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }

 private:
  absl::Mutex mu_;
  int runs_ ABSL_GUARDED_BY(mu_) = 0;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::vector<int>> batches_ ABSL_GUARDED_BY(mu_);
  std::vector<const float*> inputs_ ABSL_GUARDED_BY(mu_);
  std::vector<const float*> outputs_ ABSL_GUARDED_BY(mu_);
  bool hold_first_ = false;
  absl::Notification running_;
  absl::Status fail_;
};

// Scores each item by its tap mean / 100.
class FakeObserver : public BatchObserver {
 public:
  bool WantsTapMeans(const registry::LoadedModel& model) const override {
    return model.stored.name == "watched";
  }
  std::vector<double> OnBatch(const registry::LoadedModel&,
                              const model_input::TapMeans& means) override {
    std::vector<double> scores;
    for (int i = 0; i < means[0].images; ++i) scores.push_back(means[0].image(i)[0] / 100.0);
    observed_ += means[0].images;
    return scores;
  }
  int observed_ = 0;  // executor thread only; read after the outcomes are in
};

class ExecutorTest : public ::testing::Test {
 protected:
  SchedulerOptions Options(int max_batch) {
    SchedulerOptions options;
    options.max_batch_size = max_batch;
    options.max_queue_delay = std::chrono::microseconds(0);
    return options;
  }
  metrics::Metrics metrics_;
  Outcomes outcomes_;
  FakeRunner runner_;
  std::shared_ptr<const registry::LoadedModel> a_ = FakeModel("a");
};

TEST_F(ExecutorTest, EveryItemGetsItsOwnLogitsFromOneBatch) {
  BatchScheduler scheduler(Options(4), metrics_);
  runner_.HoldFirstBatch();
  Executor executor("cpu", scheduler, runner_, metrics_);
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(9, a_)).ok());
  runner_.WaitUntilRunning();  // the device is busy: the next items queue up together
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(scheduler.Submit(outcomes_.Item(id, a_)).ok());
  runner_.Release();
  ASSERT_TRUE(outcomes_.WaitFor(4));
  EXPECT_EQ(runner_.batches(), (std::vector<std::vector<int>>{{9}, {1, 2, 3}}));
  for (const auto& outcome : outcomes_.Get()) {
    ASSERT_EQ(outcome.code, absl::StatusCode::kOk);
    ASSERT_EQ(outcome.logits.size(), 2u * 16);
    EXPECT_EQ(outcome.logits.front(), 10.0f * outcome.id);       // class 0
    EXPECT_EQ(outcome.logits.back(), 10.0f * outcome.id + 1.0f);  // class 1
    EXPECT_EQ(outcome.batch_size, outcome.id == 9 ? 1 : 3);
    EXPECT_EQ(outcome.shift_score, -1);
  }
}

// The data path's copies (issue 17): a lone item's input reaches the model where the
// request left it, and every item's logits are read where the model wrote them.
TEST_F(ExecutorTest, ALoneItemsInputAndEveryItemsLogitsAreNotCopied) {
  BatchScheduler scheduler(Options(4), metrics_);
  Executor executor("cpu", scheduler, runner_, metrics_);
  WorkItem item = outcomes_.Item(5, a_, 256, 256);
  const float* request_input = item.input.data();
  ASSERT_TRUE(scheduler.Submit(std::move(item)).ok());
  ASSERT_TRUE(outcomes_.WaitFor(1));
  ASSERT_EQ(runner_.inputs().size(), 1u);
  EXPECT_EQ(runner_.inputs()[0], request_input) << "the input was staged (copied)";
  EXPECT_EQ(outcomes_.Get()[0].logits_data, runner_.outputs()[0]) << "the logits were copied";
}

TEST_F(ExecutorTest, InteractiveWorkOvertakesQueuedBackgroundWork) {
  BatchScheduler scheduler(Options(8), metrics_);
  runner_.HoldFirstBatch();
  Executor executor("cpu", scheduler, runner_, metrics_);
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(1, a_)).ok());
  runner_.WaitUntilRunning();
  WorkItem analysis = outcomes_.Item(2, a_);
  analysis.priority = Priority::kBackground;
  ASSERT_TRUE(scheduler.Submit(std::move(analysis)).ok());
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(3, a_)).ok());
  runner_.Release();
  ASSERT_TRUE(outcomes_.WaitFor(3));
  EXPECT_EQ(runner_.batches(), (std::vector<std::vector<int>>{{1}, {3}, {2}}));
}

TEST_F(ExecutorTest, AFailedForwardPassFailsEveryItemOfTheBatch) {
  BatchScheduler scheduler(Options(8), metrics_);
  runner_.FailWith(absl::ResourceExhaustedError("out of device memory"));
  Executor executor("cpu", scheduler, runner_, metrics_);
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(1, a_)).ok());
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(2, a_)).ok());
  ASSERT_TRUE(outcomes_.WaitFor(2));
  for (const auto& outcome : outcomes_.Get()) {
    EXPECT_EQ(outcome.code, absl::StatusCode::kResourceExhausted);
  }
}

TEST_F(ExecutorTest, ObserversSeeInteractiveBatchesAndScoreEachItem) {
  BatchScheduler scheduler(Options(8), metrics_);
  FakeObserver observer;
  Executor executor("cpu", scheduler, runner_, metrics_, &observer);
  auto watched = FakeModel("watched");
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(50, watched)).ok());
  ASSERT_TRUE(outcomes_.WaitFor(1));
  // An analysis of the same model asks for its tap means and is not live traffic.
  WorkItem analysis = outcomes_.Item(7, watched);
  analysis.priority = Priority::kBackground;
  analysis.want_tap_means = true;
  ASSERT_TRUE(scheduler.Submit(std::move(analysis)).ok());
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(1, a_)).ok());  // not watched
  ASSERT_TRUE(outcomes_.WaitFor(3));
  scheduler.Shutdown();
  executor.Join();
  auto outcomes = outcomes_.Get();
  EXPECT_DOUBLE_EQ(outcomes[0].shift_score, 0.5);
  EXPECT_FALSE(outcomes[0].has_tap_means);
  for (size_t i = 1; i < outcomes.size(); ++i) {
    EXPECT_EQ(outcomes[i].shift_score, -1);
    EXPECT_EQ(outcomes[i].has_tap_means, outcomes[i].id == 7);
  }
  EXPECT_EQ(observer.observed_, 1);
}

TEST_F(ExecutorTest, ShutdownAnswersQueuedWorkAndStopsTheDeviceThread) {
  BatchScheduler scheduler(Options(8), metrics_);
  runner_.HoldFirstBatch();
  auto executor = std::make_unique<Executor>("cpu", scheduler, runner_, metrics_);
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(1, a_)).ok());
  runner_.WaitUntilRunning();
  ASSERT_TRUE(scheduler.Submit(outcomes_.Item(2, a_)).ok());
  scheduler.Shutdown();  // item 2 is answered UNAVAILABLE; item 1 finishes its pass
  runner_.Release();
  executor.reset();
  auto outcomes = outcomes_.Get();
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].id, 2);
  EXPECT_EQ(outcomes[0].code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(outcomes[1].id, 1);
  EXPECT_EQ(outcomes[1].code, absl::StatusCode::kOk);
  EXPECT_EQ(scheduler.Submit(outcomes_.Item(3, a_)).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace segserve::inference
