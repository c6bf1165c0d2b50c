// File: tests/experiment/stats_test.cc — the experiment's aggregation math against values
// computed independently (numpy, ddof=1; t quantiles by numerically inverting the t CDF).
#include "server/experiment/stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace segserve::experiment {
namespace {

TEST(TCritical95Test, MatchesStudentTQuantilesAndNormalBeyond30) {
  // Numerical inversion of the t CDF (midpoint rule and bisection), 6 decimals.
  EXPECT_NEAR(TCritical95(1), 12.706204, 1e-5);
  EXPECT_NEAR(TCritical95(2), 4.302653, 1e-6);
  EXPECT_NEAR(TCritical95(3), 3.182446, 1e-6);
  EXPECT_NEAR(TCritical95(4), 2.776445, 1e-6);
  EXPECT_NEAR(TCritical95(5), 2.570582, 1e-6);
  EXPECT_NEAR(TCritical95(10), 2.228139, 1e-6);
  EXPECT_NEAR(TCritical95(30), 2.042272, 1e-6);
  EXPECT_NEAR(TCritical95(31), 1.959964, 1e-6);
  EXPECT_NEAR(TCritical95(1000), 1.959964, 1e-6);
  EXPECT_EQ(TCritical95(0), 0);
}

TEST(TCritical95Test, DecreasesWithDegreesOfFreedom) {
  for (int df = 1; df < 40; ++df) EXPECT_GE(TCritical95(df), TCritical95(df + 1)) << df;
}

TEST(SummarizeTest, ThreeSeedsMeanSdAndTInterval) {
  Summary s = Summarize({0.81, 0.84, 0.79});
  EXPECT_EQ(s.n, 3);
  EXPECT_NEAR(s.mean, 0.8133333333333334, 1e-12);
  EXPECT_NEAR(s.sd, 0.025166114784235794, 1e-12);
  EXPECT_NEAR(s.half_width, 0.06251609872040695, 1e-6);
  EXPECT_TRUE(s.interval);
  EXPECT_NEAR(s.low(), 0.8133333 - 0.0625161, 1e-6);
  EXPECT_NEAR(s.high(), 0.8133333 + 0.0625161, 1e-6);
}

TEST(SummarizeTest, TenValues) {
  Summary s = Summarize({0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4});
  EXPECT_NEAR(s.mean, 0.95, 1e-12);
  EXPECT_NEAR(s.sd, 0.30276503540974914, 1e-12);
  EXPECT_NEAR(s.half_width, 0.21658504338007545, 1e-6);
}

TEST(SummarizeTest, FortyValuesUseTheNormalQuantile) {
  std::vector<double> v;
  for (int i = 0; i < 40; ++i) v.push_back(i / 40.0);
  Summary s = Summarize(v);
  EXPECT_NEAR(s.mean, 0.4875, 1e-12);
  EXPECT_NEAR(s.sd, 0.29226129861250305, 1e-12);
  EXPECT_NEAR(s.half_width, 0.09057105122186761, 1e-6);
}

TEST(SummarizeTest, OneValueHasNoInterval) {
  Summary s = Summarize({0.7});
  EXPECT_EQ(s.n, 1);
  EXPECT_DOUBLE_EQ(s.mean, 0.7);
  EXPECT_EQ(s.sd, 0);
  EXPECT_EQ(s.half_width, 0);
  EXPECT_FALSE(s.interval);
}

TEST(SummarizeTest, NoValues) {
  Summary s = Summarize({});
  EXPECT_EQ(s.n, 0);
  EXPECT_EQ(s.mean, 0);
  EXPECT_FALSE(s.interval);
}

TEST(SummarizeTest, IdenticalValuesHaveAZeroWidthInterval) {
  Summary s = Summarize({0.5, 0.5, 0.5});
  EXPECT_EQ(s.sd, 0);
  EXPECT_EQ(s.half_width, 0);
  EXPECT_TRUE(s.interval);
}

TEST(PairedDiffTest, PairsBySeedAndCountsSeedsBetter) {
  SeedValues level = {{1, 0.70}, {2, 0.74}, {3, 0.69}};
  SeedValues base = {{1, 0.80}, {2, 0.78}, {3, 0.71}};
  PairedDifference d = PairedDiff(level, base);
  EXPECT_EQ(d.pairs, 3);
  EXPECT_EQ(d.better, 0);
  EXPECT_NEAR(d.diff.mean, -0.05333333333333338, 1e-12);
  EXPECT_NEAR(d.diff.sd, 0.04163331998932269, 1e-12);
  EXPECT_NEAR(d.diff.half_width, 0.10342290674685983, 1e-6);
}

TEST(PairedDiffTest, SeedsMissingOnEitherSideAreLeftOut) {
  SeedValues level = {{1, 0.9}, {2, 0.5}, {7, 0.1}};
  SeedValues base = {{1, 0.8}, {2, 0.6}, {3, 0.2}};
  PairedDifference d = PairedDiff(level, base);
  EXPECT_EQ(d.pairs, 2);
  EXPECT_EQ(d.better, 1);
  EXPECT_NEAR(d.diff.mean, 0.0, 1e-12);
  EXPECT_NEAR(d.diff.sd, std::sqrt(0.02), 1e-12);  // diffs +0.1, -0.1
}

TEST(PairedDiffTest, AgainstItselfIsZeroAndNeverBetter) {
  SeedValues v = {{1, 0.3}, {2, 0.4}};
  PairedDifference d = PairedDiff(v, v);
  EXPECT_EQ(d.better, 0);
  EXPECT_EQ(d.diff.mean, 0);
  EXPECT_EQ(d.diff.half_width, 0);
}

TEST(RobustnessTest, MeanOverLevelsAndRetainedFraction) {
  Robustness r = RobustnessOf(0.8, {0.7, 0.6, 0.2});
  EXPECT_NEAR(r.shift_mean, 0.5, 1e-12);
  ASSERT_TRUE(r.retained.has_value());
  EXPECT_NEAR(*r.retained, 0.625, 1e-12);
}

TEST(RobustnessTest, NoRetainedFractionWithoutInDomainIoU) {
  Robustness r = RobustnessOf(0.0, {0.1});
  EXPECT_FALSE(r.retained.has_value());
}

TEST(StatsJsonTest, SummaryAndPairedFields) {
  nlohmann::json s = SummaryJson(Summarize({0.81, 0.84, 0.79}));
  EXPECT_EQ(s["n"], 3);
  EXPECT_NEAR(s["ci95_low"].get<double>(), 0.8133333 - 0.0625161, 1e-6);
  EXPECT_EQ(s["interval"], true);
  nlohmann::json p = PairedJson(PairedDiff({{1, 0.9}}, {{1, 0.8}}));
  EXPECT_EQ(p["better"], 1);
  EXPECT_EQ(p["pairs"], 1);
  EXPECT_EQ(p["interval"], false);
}

}  // namespace
}  // namespace segserve::experiment
