// File: tests/susceptibility/drift_monitor_test.cc — DriftMonitor against a reference in
// server/training's reference_stats schema (built by training::ReferenceStatsJson): gauges
// rise under shift and fall back, the per-request score, malformed references, removal, and
// concurrent observers.
#include "server/susceptibility/drift_monitor.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "prometheus/registry.h"
#include "server/training/metrics_util.h"

namespace segserve::susceptibility {
namespace {

constexpr int kChannels = 8;

// Layer "encoder.stem" (8 channels) and "encoder.layer4" (4 channels), normal around 1.
std::vector<std::vector<float>> Sample(std::mt19937& rng, float shift) {
  std::normal_distribution<float> d(1.f, 0.1f);
  std::vector<float> stem(kChannels), deep(4);
  for (float& v : stem) v = d(rng) + shift;
  for (float& v : deep) v = d(rng);
  return {stem, deep};
}

nlohmann::json Reference(int images) {
  std::mt19937 rng(1);
  std::vector<training::LayerReference> layers(2);
  layers[0] = {"encoder.stem", kChannels, {}};
  layers[1] = {"encoder.layer4", 4, {}};
  for (int i = 0; i < images; ++i) {
    auto s = Sample(rng, 0);
    layers[0].samples.push_back(s[0]);
    layers[1].samples.push_back(s[1]);
  }
  return training::ReferenceStatsJson(layers);
}

TapMeans One(const std::vector<std::vector<float>>& s) {
  return {{"encoder.stem", 1, kChannels, s[0]}, {"encoder.layer4", 1, 4, s[1]}};
}

double Gauge(metrics::Metrics& m, const std::string& model, const std::string& layer) {
  for (const auto& family : m.registry()->Collect()) {
    if (family.name != "segserve_domain_shift_hellinger") continue;
    for (const auto& metric : family.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : metric.label) labels[l.name] = l.value;
      if (labels["model"] == model && labels["layer"] == layer) return metric.gauge.value;
    }
  }
  return -1;
}

TEST(DriftMonitorTest, GaugeRisesUnderShiftAndFallsBackAfterInDomainImages) {
  metrics::Metrics m;
  DriftOptions o;
  o.window = 64;
  DriftMonitor monitor(m, o);
  ASSERT_TRUE(monitor.SetReference("m:1", Reference(1000)).ok());
  EXPECT_EQ(Gauge(m, "m:1", "encoder.stem"), 0.0);
  std::mt19937 rng(2);
  for (int i = 0; i < 64; ++i) monitor.Observe("m:1", One(Sample(rng, 0)), 0);
  const double in_domain = Gauge(m, "m:1", "encoder.stem");
  EXPECT_LT(in_domain, 0.3);  // the small-window floor (64 images, 32 bins)
  EXPECT_EQ(monitor.WindowImages("m:1"), 64);

  for (int i = 0; i < 64; ++i) monitor.Observe("m:1", One(Sample(rng, 0.5f)), 0);
  const double shifted = Gauge(m, "m:1", "encoder.stem");
  EXPECT_GT(shifted, 0.95);
  // Layer 4 saw no shift.
  EXPECT_LT(Gauge(m, "m:1", "encoder.layer4"), 0.3);

  for (int i = 0; i < 64; ++i) monitor.Observe("m:1", One(Sample(rng, 0)), 0);
  const double back = Gauge(m, "m:1", "encoder.stem");
  EXPECT_LT(back, 0.3);
  EXPECT_NEAR(back, in_domain, 0.1);
  auto layers = monitor.LayerDistances("m:1");
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_DOUBLE_EQ(layers[0].second, back);
}

TEST(DriftMonitorTest, RunningSumsStayExactOverManyWindows) {
  metrics::Metrics m;
  DriftOptions o;
  o.window = 16;
  DriftMonitor a(m, o);
  ASSERT_TRUE(a.SetReference("m", Reference(500)).ok());
  std::mt19937 rng(3);
  std::vector<TapMeans> seen;
  for (int i = 0; i < 16 * 50 + 5; ++i) {
    seen.push_back(One(Sample(rng, (i / 40) % 2 ? 0.2f : 0.f)));
    a.Observe("m", seen.back(), 0);
  }
  // A fresh monitor fed only the last window gives the same distances.
  metrics::Metrics m2;
  DriftMonitor b(m2, o);
  ASSERT_TRUE(b.SetReference("m", Reference(500)).ok());
  for (size_t i = seen.size() - 16; i < seen.size(); ++i) b.Observe("m", seen[i], 0);
  for (size_t l = 0; l < 2; ++l) {
    EXPECT_NEAR(a.LayerDistances("m")[l].second, b.LayerDistances("m")[l].second, 1e-9);
  }
}

TEST(DriftMonitorTest, RequestScoreIsZeroInsideTheTrainingRangeAndNearOneFarOutside) {
  metrics::Metrics m;
  DriftMonitor monitor(m);
  ASSERT_TRUE(monitor.SetReference("m", Reference(1000)).ok());
  std::vector<std::vector<float>> mid = {std::vector<float>(kChannels, 1.0f),
                                         std::vector<float>(4, 1.0f)};
  EXPECT_EQ(monitor.Observe("m", One(mid), 0), 0.0);
  auto far = mid;
  for (float& v : far[0]) v = 3.0f;  // 20 sigma above the mean
  EXPECT_GT(monitor.Observe("m", One(far), 0), 0.99);
  auto half = mid;
  for (int c = 0; c < kChannels / 2; ++c) half[0][c] = 3.0f;
  const double s = monitor.Observe("m", One(half), 0);
  EXPECT_GT(s, 0.45);
  EXPECT_LT(s, 0.55);
  EXPECT_EQ(monitor.Observe("unknown", One(mid), 0), kNoReference);
}

TEST(DriftMonitorTest, RefusesMalformedReferences) {
  metrics::Metrics m;
  DriftMonitor monitor(m);
  EXPECT_EQ(monitor.SetReference("m", nlohmann::json::object()).code(),
            absl::StatusCode::kInvalidArgument);
  nlohmann::json ref = Reference(10);
  ref["layers"][0]["hist"].erase(0);
  const absl::Status s = monitor.SetReference("m", ref);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("layers[0].hist"), std::string::npos) << s;
  EXPECT_FALSE(monitor.HasReference("m"));
}

TEST(DriftMonitorTest, RemoveModelDropsItsGauges) {
  metrics::Metrics m;
  DriftMonitor monitor(m);
  ASSERT_TRUE(monitor.SetReference("m", Reference(10)).ok());
  ASSERT_TRUE(monitor.SetReference("m", Reference(20)).ok());  // replace keeps one set
  EXPECT_EQ(Gauge(m, "m", "encoder.stem"), 0.0);
  monitor.RemoveModel("m");
  EXPECT_EQ(Gauge(m, "m", "encoder.stem"), -1);
  EXPECT_FALSE(monitor.HasReference("m"));
}

TEST(DriftMonitorTest, ConcurrentObserversAndReferenceSwaps) {
  metrics::Metrics m;
  DriftOptions o;
  o.window = 32;
  DriftMonitor monitor(m, o);
  ASSERT_TRUE(monitor.SetReference("a", Reference(100)).ok());
  ASSERT_TRUE(monitor.SetReference("b", Reference(100)).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 500; ++i) monitor.Observe(t % 2 ? "a" : "b", One(Sample(rng, 0)), 0);
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(monitor.SetReference("a", Reference(50)).ok());
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(monitor.WindowImages("b"), 32);
  EXPECT_GE(Gauge(m, "a", "encoder.stem"), 0.0);
}

}  // namespace
}  // namespace segserve::susceptibility
