// File: tests/experiment/report_test.cc — the report built from children's specs and results:
// per-cell summaries, paired differences against L0, robustness and findings that claim no more
// than the intervals carry.
#include "server/experiment/report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace segserve::experiment {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

ExperimentSpec Spec() {
  ExperimentSpec spec;
  spec.train.dataset = "d";
  spec.encoders = {"resnet18"};
  spec.prune_levels = {0, 1};
  spec.seeds = {1, 2, 3};
  spec.shifts = {"brightness"};
  spec.shift_levels = {1, 3};
  return spec;
}

// A succeeded child of `spec` at (level, seed) with the given IoUs.
scheduler::Job Child(const ExperimentSpec& spec, int level, uint64_t seed, double test, double b1,
                     double b3) {
  training::TrainSpec ts;
  for (const auto& c : ExpandExperiment(spec)) {
    if (c.prune_level == level && c.seed == seed) ts = c;
  }
  scheduler::Job job;
  job.id = "job-l" + std::to_string(level) + "s" + std::to_string(seed);
  job.state = scheduler::JobState::kSucceeded;
  job.spec_json = training::TrainSpecToJsonString(ts);
  job.result_json = json{{"model_name", ts.model_name},
                         {"model_version", 1},
                         {"test_iou", test},
                         {"test_class_iou", {{"parasite", test}}},
                         {"cross_domain_iou", {{"brightness:1", b1}, {"brightness:3", b3}}}}
                        .dump();
  return job;
}

TEST(ReportTest, CellsPairedDifferencesAndRobustness) {
  ExperimentSpec spec = Spec();
  std::vector<scheduler::Job> children = {
      Child(spec, 0, 1, 0.80, 0.70, 0.50), Child(spec, 0, 2, 0.78, 0.66, 0.40),
      Child(spec, 0, 3, 0.71, 0.60, 0.30), Child(spec, 1, 1, 0.70, 0.72, 0.60),
      Child(spec, 1, 2, 0.74, 0.70, 0.50), Child(spec, 1, 3, 0.69, 0.62, 0.40)};
  auto report = BuildReport(spec, children);
  ASSERT_TRUE(report.ok()) << report.status();
  const json& r = *report;
  EXPECT_EQ(r["children"]["succeeded"], 6);
  ASSERT_EQ(r["cells"].size(), 2u);
  const json& l0 = r["cells"][0];
  EXPECT_EQ(l0["prune_level"], 0);
  EXPECT_EQ(l0["test_iou"]["n"], 3);
  EXPECT_NEAR(l0["test_iou"]["mean"].get<double>(), (0.80 + 0.78 + 0.71) / 3, 1e-12);
  EXPECT_EQ(l0["test_class_iou"]["parasite"]["n"], 3);
  EXPECT_NEAR(l0["shift_iou"]["brightness"]["3"]["mean"].get<double>(), 0.4, 1e-12);
  // shift_mean per seed: 0.60, 0.53, 0.45 -> mean 0.526667
  EXPECT_NEAR(l0["shift_mean"]["brightness"]["mean"].get<double>(), (0.60 + 0.53 + 0.45) / 3,
              1e-12);
  // retained per seed: 0.6/0.8, 0.53/0.78, 0.45/0.71
  EXPECT_NEAR(l0["retained"]["brightness"]["mean"].get<double>(),
              (0.6 / 0.8 + 0.53 / 0.78 + 0.45 / 0.71) / 3, 1e-12);
  EXPECT_EQ(l0["shift_mean_all"]["n"], 3);

  ASSERT_EQ(r["paired_vs_l0"].size(), 1u);
  const json& p = r["paired_vs_l0"][0];
  EXPECT_EQ(p["prune_level"], 1);
  // diffs -0.10, -0.04, -0.02 (numpy: mean -0.053333, sd 0.041633, half-width 0.103423)
  EXPECT_NEAR(p["test_iou"]["mean"].get<double>(), -0.05333333333333338, 1e-12);
  EXPECT_NEAR(p["test_iou"]["half_width"].get<double>(), 0.10342290674685983, 1e-6);
  EXPECT_EQ(p["test_iou"]["better"], 0);
  EXPECT_EQ(p["shift_iou"]["brightness"]["3"]["better"], 3);
  EXPECT_EQ(p["shift_mean"]["brightness"]["pairs"], 3);
}

TEST(ReportTest, FindingsStateUncertaintyAndNeverOverclaim) {
  ExperimentSpec spec = Spec();
  std::vector<scheduler::Job> children = {
      Child(spec, 0, 1, 0.80, 0.70, 0.50), Child(spec, 0, 2, 0.78, 0.66, 0.40),
      Child(spec, 0, 3, 0.71, 0.60, 0.30), Child(spec, 1, 1, 0.70, 0.72, 0.60),
      Child(spec, 1, 2, 0.74, 0.70, 0.50), Child(spec, 1, 3, 0.69, 0.62, 0.40)};
  auto report = BuildReport(spec, children);
  ASSERT_TRUE(report.ok());
  std::map<std::string, std::string> text;
  for (const auto& f : (*report)["findings"]) text[f["question"]] = f["text"];
  EXPECT_THAT(text["RQ1"], HasSubstr("not measured"));
  // In-domain: interval [-0.157, 0.050] includes 0: not resolved.
  EXPECT_THAT(text["RQ2"], HasSubstr("L1 - L0 in-domain test IoU: -0.053 ± 0.103 (0 of 3 seeds "
                                     "better): not resolved"));
  // Cross-domain per-seed diffs +0.06, +0.10, +0.06: interval above 0.
  EXPECT_THAT(text["RQ2"], HasSubstr("L1 higher (95% interval above 0)"));
  EXPECT_THAT(text["RQ3"], HasSubstr("highest mean cross-domain IoU: L1"));
}

// The bf16 serving check (TrainSpec::bf16_check): per cell the bf16 test IoU, the paired
// bf16 - fp32 difference of the same models and the worst drop, and a finding per cell.
TEST(ReportTest, Bf16CheckIsSummarisedPerCellAndPairedByModel) {
  ExperimentSpec spec = Spec();
  spec.train.bf16_check = true;
  std::vector<scheduler::Job> children;
  const double fp32[] = {0.80, 0.78, 0.71}, bf16[] = {0.801, 0.776, 0.704};
  for (uint64_t seed : {1, 2, 3}) {
    for (int level : {0, 1}) {
      scheduler::Job child = Child(spec, level, seed, fp32[seed - 1], 0.7, 0.5);
      json result = json::parse(child.result_json);
      if (level == 0) result["test_iou_bf16"] = bf16[seed - 1];
      child.result_json = result.dump();
      children.push_back(child);
    }
  }
  auto report = BuildReport(spec, children);
  ASSERT_TRUE(report.ok()) << report.status();
  const json& l0 = (*report)["cells"][0];
  EXPECT_NEAR(l0["test_iou_bf16"]["mean"].get<double>(), (0.801 + 0.776 + 0.704) / 3, 1e-12);
  // bf16 - fp32 per model: +0.001, -0.004, -0.006.
  EXPECT_NEAR(l0["bf16_minus_fp32"]["mean"].get<double>(), -0.003, 1e-12);
  EXPECT_EQ(l0["bf16_minus_fp32"]["better"], 1);
  EXPECT_NEAR(l0["bf16_max_drop"].get<double>(), 0.006, 1e-12);
  EXPECT_EQ((*report)["models"][0]["test_iou_bf16"], 0.801);
  // L1's children carry no check: no bf16 fields, no finding for it.
  EXPECT_FALSE((*report)["cells"][1].contains("bf16_minus_fp32"));
  std::vector<std::string> bf16_findings;
  for (const auto& f : (*report)["findings"]) {
    if (f["question"] == "bf16") bf16_findings.push_back(f["text"]);
  }
  ASSERT_EQ(bf16_findings.size(), 1u);
  EXPECT_THAT(bf16_findings[0], HasSubstr("bf16 serving (resnet18 L0): test IoU bf16 - fp32 "
                                          "-0.003"));
  EXPECT_THAT(bf16_findings[0], HasSubstr("(1 of 3 seeds better)"));
  EXPECT_THAT(bf16_findings[0], HasSubstr("largest drop of one model 0.0060"));
}

TEST(ReportTest, OneSeedGivesNoIntervalAndNoClaim) {
  ExperimentSpec spec = Spec();
  spec.seeds = {1};
  auto report =
      BuildReport(spec, {Child(spec, 0, 1, 0.8, 0.7, 0.5), Child(spec, 1, 1, 0.9, 0.8, 0.6)});
  ASSERT_TRUE(report.ok());
  EXPECT_EQ((*report)["cells"][0]["test_iou"]["interval"], false);
  std::string rq2;
  for (const auto& f : (*report)["findings"]) {
    if (f["question"] == "RQ2") rq2 = f["text"];
  }
  EXPECT_THAT(rq2, HasSubstr("not resolved (one seed gives no interval)"));
  EXPECT_THAT(rq2, ::testing::Not(HasSubstr("L1 higher")));
}

TEST(ReportTest, FailedChildrenAreCountedAndLeftOutOfTheStatistics) {
  ExperimentSpec spec = Spec();
  scheduler::Job failed = Child(spec, 1, 3, 0.1, 0.1, 0.1);
  failed.state = scheduler::JobState::kFailed;
  failed.reason = "boom";
  auto report = BuildReport(spec, {Child(spec, 0, 3, 0.8, 0.7, 0.5), failed});
  ASSERT_TRUE(report.ok());
  EXPECT_EQ((*report)["children"]["failed"], 1);
  EXPECT_EQ((*report)["cells"][1]["test_iou"]["n"], 0);
  EXPECT_EQ((*report)["models"][1]["reason"], "boom");
  EXPECT_EQ((*report)["paired_vs_l0"][0]["test_iou"]["pairs"], 0);
}

TEST(ReportTest, ChildWithoutATrainingSpecIsAnError) {
  scheduler::Job bad;
  bad.id = "job-x";
  bad.spec_json = "not json";
  EXPECT_EQ(BuildReport(Spec(), {bad}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segserve::experiment
