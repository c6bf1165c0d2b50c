// File: tests/experiment/susceptibility_report_test.cc — the report's susceptibility part:
// per-layer Hellinger distances and nulls of every model aggregated per configuration and
// target over seeds (values checked against hand/numpy results), and RQ1 lines that claim
// only what the paired intervals carry.
#include "server/experiment/susceptibility_report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "server/experiment/report.h"

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
  spec.shift_levels = {1, 5};
  spec.susceptibility = training::SusceptibilitySpec{{"brightness:5"}, 8};
  return spec;
}

// A layer as report_json.h writes it; NaN (a null without two source images) as JSON null.
json Layer(const std::string& name, double hellinger, double null) {
  return {{"layer", name},
          {"channels", 4},
          {"mean", hellinger},
          {"median", hellinger},
          {"max", hellinger},
          {"null_mean", std::isnan(null) ? json() : json(null)},
          {"null_median", json()},
          {"null_max", json()}};
}

// Per seed (index seed - 1): Hellinger and null of three layers.
//   encoder.layer1 H 0.40 0.50 0.60   null 0.10 0.12 0.08
//   encoder.stem   H 0.30 0.35 0.40   null 0.05 0.05 0.05
//   decoder.block0 H 0.10 0.05 0.12   null 0.05 0.07 NaN
json Result(uint64_t seed) {
  const double h1[] = {0.40, 0.50, 0.60}, n1[] = {0.10, 0.12, 0.08};
  const double hs[] = {0.30, 0.35, 0.40};
  const double hd[] = {0.10, 0.05, 0.12}, nd[] = {0.05, 0.07, NAN};
  const int i = static_cast<int>(seed) - 1;
  json layers = {Layer("encoder.stem", hs[i], 0.05), Layer("encoder.layer1", h1[i], n1[i]),
                 Layer("decoder.block0", hd[i], nd[i])};
  return {{"brightness:5", {{"source_images", 8}, {"target_images", 8}, {"layers", layers}}},
          // Not a target of the spec: left out.
          {"contrast:5", {{"layers", {Layer("encoder.stem", 0.9, 0.1)}}}}};
}

scheduler::Job Child(const ExperimentSpec& spec, int level, uint64_t seed, const json& s) {
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
                         {"test_iou", 0.8},
                         {"cross_domain_iou", {{"brightness:1", 0.7}, {"brightness:5", 0.2}}},
                         {"susceptibility", s}}
                        .dump();
  return job;
}

// L0 with three seeds; L1 with seed 1 only (the others failed).
std::vector<scheduler::Job> Children(const ExperimentSpec& spec) {
  std::vector<scheduler::Job> children;
  for (uint64_t seed : {1, 2, 3}) children.push_back(Child(spec, 0, seed, Result(seed)));
  children.push_back(Child(spec, 1, 1, Result(1)));
  return children;
}

const json& LayerOf(const json& entry, const std::string& name) {
  for (const json& l : entry["layers"]) {
    if (l["layer"] == name) return l;
  }
  static const json none;
  return none;
}

TEST(SusceptibilityReportTest, AggregatesEachLayerOverSeedsPerConfigurationAndTarget) {
  const ExperimentSpec spec = Spec();
  auto report = BuildReport(spec, Children(spec));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ((*report)["version"], 2);
  const json& entries = (*report)["susceptibility"];
  ASSERT_EQ(entries.size(), 2u) << entries.dump();  // L0 and L1 at brightness:5
  const json& l0 = entries[0];
  EXPECT_EQ(l0["encoder"], "resnet18");
  EXPECT_EQ(l0["prune_level"], 0);
  EXPECT_EQ(l0["target"], "brightness:5");
  ASSERT_EQ(l0["layers"].size(), 3u);
  EXPECT_EQ(l0["layers"][0]["layer"], "encoder.stem");  // the models' (tap) order
  // encoder.layer1: mean 0.5, sd 0.1, half-width t(0.975, 2) * 0.1 / sqrt(3) = 0.2484138.
  const json& layer1 = LayerOf(l0, "encoder.layer1");
  EXPECT_EQ(layer1["hellinger"]["n"], 3);
  EXPECT_NEAR(layer1["hellinger"]["mean"].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(layer1["hellinger"]["sd"].get<double>(), 0.1, 1e-12);
  EXPECT_NEAR(layer1["hellinger"]["half_width"].get<double>(), 0.2484138, 1e-6);
  EXPECT_NEAR(layer1["null"]["mean"].get<double>(), 0.1, 1e-12);
  EXPECT_NEAR(layer1["null"]["sd"].get<double>(), 0.02, 1e-12);
  // Hellinger - null per seed 0.30 0.38 0.52 (numpy): mean 0.4, sd 0.1113553, half 0.2766219.
  EXPECT_NEAR(layer1["above_null"]["mean"].get<double>(), 0.4, 1e-12);
  EXPECT_NEAR(layer1["above_null"]["sd"].get<double>(), 0.1113553, 1e-6);
  EXPECT_NEAR(layer1["above_null"]["half_width"].get<double>(), 0.2766219, 1e-6);
  EXPECT_EQ(layer1["above_null"]["better"], 3);
  // decoder.block0: seed 3's null is undefined (NaN): n = 2 for the null, 2 pairs.
  const json& block0 = LayerOf(l0, "decoder.block0");
  EXPECT_EQ(block0["hellinger"]["n"], 3);
  EXPECT_EQ(block0["null"]["n"], 2);
  EXPECT_NEAR(block0["null"]["mean"].get<double>(), 0.06, 1e-12);
  EXPECT_EQ(block0["above_null"]["pairs"], 2);
  // L1 has one model: n = 1, no interval.
  EXPECT_EQ(entries[1]["prune_level"], 1);
  EXPECT_EQ(LayerOf(entries[1], "encoder.layer1")["hellinger"]["n"], 1);
  EXPECT_EQ(LayerOf(entries[1], "encoder.layer1")["hellinger"]["interval"], false);
  // Each model's own values in its row.
  const json& model = (*report)["models"][0];
  ASSERT_TRUE(model["susceptibility"].contains("brightness:5"));
  EXPECT_EQ(model["susceptibility"]["brightness:5"][1]["layer"], "encoder.layer1");
  EXPECT_EQ(model["susceptibility"]["brightness:5"][1]["hellinger"], 0.40);
  EXPECT_EQ(model["susceptibility"]["brightness:5"][1]["null"], 0.10);
}

TEST(SusceptibilityReportTest, Rq1RanksLayersAndClaimsOnlyWhatThePairedIntervalsCarry) {
  const ExperimentSpec spec = Spec();
  auto report = BuildReport(spec, Children(spec));
  ASSERT_TRUE(report.ok()) << report.status();
  std::vector<std::string> rq1;
  for (const json& f : (*report)["findings"]) {
    if (f["question"] == "RQ1") {
      rq1.push_back(f["text"]);
      EXPECT_EQ(f["target"], "brightness:5");
    }
  }
  ASSERT_EQ(rq1.size(), 1u);  // one encoder, one target
  const std::string& text = rq1[0];
  EXPECT_THAT(text, HasSubstr("RQ1 (resnet18, brightness:5;"));
  EXPECT_THAT(text, HasSubstr("L0: most shifted encoder.layer1 0.500 ± 0.248 (n=3), then "
                              "encoder.stem 0.350, decoder.block0 0.090"));
  // encoder.layer1 - encoder.stem per seed 0.10 0.15 0.20: mean 0.15, half-width 0.124207.
  EXPECT_THAT(text, HasSubstr("encoder.layer1 - encoder.stem: +0.150 ± 0.124 (3 of 3 seeds "
                              "better): encoder.layer1 ahead (95% interval above 0)"));
  // layer1 (low 0.123) and stem (diffs 0.25 0.30 0.35, low 0.176) are above their null;
  // decoder.block0 (diffs 0.05 -0.02: mean above 0, interval not) is not.
  EXPECT_THAT(text, HasSubstr("2 of 3 layers above their null"));
  EXPECT_THAT(text, HasSubstr("largest null encoder.layer1 0.100 ± 0.050 (n=3)"));
  // One seed at L1: nothing is claimed about order or null.
  EXPECT_THAT(text, HasSubstr("L1: most shifted encoder.layer1 0.400 (n=1, no interval)"));
  EXPECT_THAT(text, HasSubstr("encoder.stem: +0.100 (no interval) (1 of 1 seeds better): not "
                              "resolved (one seed gives no interval)"));
  EXPECT_THAT(text, HasSubstr("above-null not resolved (one seed gives no interval)"));
}

TEST(SusceptibilityReportTest, OrderingWithinTheIntervalIsNotResolved) {
  ExperimentSpec spec = Spec();
  spec.prune_levels = {0};
  // Two layers whose per-seed order flips: the top-two difference's interval includes 0.
  std::vector<scheduler::Job> children;
  const double a[] = {0.50, 0.30, 0.45}, b[] = {0.40, 0.42, 0.35};
  for (uint64_t seed : {1, 2, 3}) {
    json layers = {Layer("encoder.layer2", a[seed - 1], 0.1),
                   Layer("encoder.layer3", b[seed - 1], 0.1)};
    children.push_back(Child(spec, 0, seed, {{"brightness:5", {{"layers", layers}}}}));
  }
  auto report = BuildReport(spec, children);
  ASSERT_TRUE(report.ok()) << report.status();
  std::string rq1;
  for (const json& f : (*report)["findings"]) {
    if (f["question"] == "RQ1") rq1 = f["text"];
  }
  EXPECT_THAT(rq1, HasSubstr("most shifted encoder.layer2"));
  EXPECT_THAT(rq1, HasSubstr("(2 of 3 seeds better): not resolved at this number of seeds"));
  EXPECT_THAT(rq1, ::testing::Not(HasSubstr("ahead")));
}

TEST(SusceptibilityReportTest, NoTargetsMeansNoSectionAndRq1SaysWhy) {
  ExperimentSpec spec = Spec();
  spec.susceptibility = training::SusceptibilitySpec{};
  auto report = BuildReport(spec, Children(spec));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE((*report)["susceptibility"].empty());
  std::string rq1;
  for (const json& f : (*report)["findings"]) {
    if (f["question"] == "RQ1") rq1 = f["text"];
  }
  EXPECT_THAT(rq1, HasSubstr("not measured"));
}

TEST(SusceptibilityReportTest, ATargetWithoutResultsIsLeftOutAndSaidSo) {
  ExperimentSpec spec = Spec();
  spec.susceptibility->targets = {"brightness:5", "contrast:3"};
  auto report = BuildReport(spec, Children(spec));
  ASSERT_TRUE(report.ok()) << report.status();
  for (const json& e : (*report)["susceptibility"]) EXPECT_EQ(e["target"], "brightness:5");
  bool said = false;
  for (const json& f : (*report)["findings"]) {
    if (f["question"] == "RQ1" && f["target"] == "contrast:3") {
      said = true;
      EXPECT_THAT(f["text"].get<std::string>(), HasSubstr("no model has results"));
    }
  }
  EXPECT_TRUE(said);
}

}  // namespace
}  // namespace segserve::experiment
