// EXPERIMENT parents: children like a sweep's, the report hook once at the end, cancel, and
// recovery of an experiment left open by a crash.
#include <atomic>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/scheduler/scheduler.h"
#include "tests/scheduler/test_util.h"

namespace segserve::scheduler {
namespace {

using testing::Backend;
using ::testing::HasSubstr;
using testing::ScriptedRunner;
using testing::Spec;
using testing::StoreFactory;
using testing::WaitTerminal;

class ExperimentParentTest : public ::testing::TestWithParam<Backend> {
 protected:
  ExperimentParentTest() { clock_.Advance(std::chrono::hours(24 * 365 * 55)); }
  void SetUp() override { ASSERT_TRUE(factory_.available().ok()) << factory_.available(); }

  std::unique_ptr<Scheduler> Make() {
    SchedulerOptions options;
    options.experiment_report =
        [this](const Job& parent, const std::vector<Job>& children) -> absl::StatusOr<std::string> {
      ++reports_;
      for (const Job& child : children) EXPECT_TRUE(IsTerminal(child.state)) << child.id;
      if (!fail_report_.empty()) return absl::InternalError(fail_report_);
      return nlohmann::json{{"parent", parent.id}, {"children", children.size()}}.dump();
    };
    auto store = factory_.Open();
    EXPECT_TRUE(store.ok()) << store.status();
    RunnerMap runners = {{JobKind::kTrain, runner_}};
    auto scheduler = Scheduler::Create(std::move(*store), runners, options, &clock_, nullptr);
    EXPECT_TRUE(scheduler.ok()) << scheduler.status();
    return std::move(*scheduler);
  }

  StoreFactory factory_{GetParam()};
  common::ManualClock clock_;
  std::shared_ptr<ScriptedRunner> runner_ = std::make_shared<ScriptedRunner>();
  std::atomic<int> reports_{0};
  std::string fail_report_;
};

TEST_P(ExperimentParentTest, ReportIsBuiltOnceWhenTheLastChildEnds) {
  auto scheduler = Make();
  auto parent = scheduler->SubmitParent(JobKind::kExperiment, R"({"seeds":[1,2]})",
                                        {Spec("a", 1, 1), Spec("b")});
  ASSERT_TRUE(parent.ok()) << parent.status();
  EXPECT_EQ(parent->kind, JobKind::kExperiment);
  ASSERT_EQ(parent->child_ids.size(), 2u);
  runner_->WaitHolding("a");
  EXPECT_EQ(scheduler->Get(parent->id)->state, JobState::kRunning);
  EXPECT_EQ(reports_, 0);
  runner_->Release("a");
  auto done = WaitTerminal(*scheduler, parent->id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(reports_, 1);
  const auto result = nlohmann::json::parse(done->result_json);
  EXPECT_EQ(result["report"]["parent"], parent->id);
  EXPECT_EQ(result["report"]["children"], 2);
  EXPECT_EQ(result["rows"].size(), 2u);  // the sweep table stays for per-child rows
  EXPECT_EQ(result["succeeded"], 2);
  // Listing by kind finds it; its children are not runnable parents.
  JobFilter filter;
  filter.kind = JobKind::kExperiment;
  EXPECT_EQ(scheduler->List(filter)->size(), 1u);
}

TEST_P(ExperimentParentTest, ReportErrorFailsTheExperimentWithItsReason) {
  fail_report_ = "disk full";
  auto scheduler = Make();
  auto parent = scheduler->SubmitParent(JobKind::kExperiment, "{}", {Spec("a")});
  ASSERT_TRUE(parent.ok());
  auto done = WaitTerminal(*scheduler, parent->id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_THAT(done->reason, HasSubstr("report: INTERNAL: disk full"));
}

TEST_P(ExperimentParentTest, CancelCancelsEveryChildAndBuildsNoReport) {
  auto scheduler = Make();
  auto parent =
      scheduler->SubmitParent(JobKind::kExperiment, "{}", {Spec("a", 3, 2), Spec("b"), Spec("c")});
  ASSERT_TRUE(parent.ok());
  runner_->WaitHolding("a");
  ASSERT_TRUE(scheduler->Cancel(parent->id).ok());
  auto done = WaitTerminal(*scheduler, parent->id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kCancelled);
  for (const JobId& child : parent->child_ids) {
    EXPECT_EQ(scheduler->Get(child)->state, JobState::kCancelled) << child;
  }
  EXPECT_EQ(reports_, 0);
  EXPECT_EQ(runner_->started().size(), 1u);  // b and c never started
}

TEST_P(ExperimentParentTest, ParentKindsAreNotSubmittedAlone) {
  auto scheduler = Make();
  EXPECT_EQ(scheduler->Submit(JobKind::kExperiment, "{}").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler->SubmitParent(JobKind::kTrain, "{}", {Spec("a")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler->SubmitParent(JobKind::kExperiment, "{}", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(ExperimentParentTest, ExperimentLeftOpenByACrashIsReportedAtRestart) {
  {
    auto store = factory_.Open();
    ASSERT_TRUE(store.ok());
    Job parent;
    parent.id = "job-e";
    parent.kind = JobKind::kExperiment;
    parent.state = JobState::kRunning;
    Job child;
    child.id = "job-c";
    child.parent_id = parent.id;
    child.state = JobState::kSucceeded;
    ASSERT_TRUE((*store)->Insert({parent, child}).ok());
  }
  auto scheduler = Make();
  auto job = scheduler->Get("job-e");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state, JobState::kSucceeded);
  EXPECT_EQ(job->child_ids.size(), 1u);
  EXPECT_EQ(reports_, 1);
  EXPECT_THAT(job->result_json, HasSubstr(R"("report":{)"));
}

TEST(JobKindTest, ExperimentNameRoundTrips) {
  EXPECT_STREQ(JobKindName(JobKind::kExperiment), "EXPERIMENT");
  EXPECT_EQ(*ParseJobKind("EXPERIMENT"), JobKind::kExperiment);
  EXPECT_TRUE(IsParentKind(JobKind::kExperiment));
  EXPECT_TRUE(IsParentKind(JobKind::kSweep));
  EXPECT_FALSE(IsParentKind(JobKind::kTrain));
}

INSTANTIATE_TEST_SUITE_P(Sqlite, ExperimentParentTest, ::testing::Values(Backend::kSqlite));
INSTANTIATE_TEST_SUITE_P(Postgres, ExperimentParentTest, ::testing::Values(Backend::kPostgres));

}  // namespace
}  // namespace segserve::scheduler
