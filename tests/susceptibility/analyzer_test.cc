// File: tests/susceptibility/analyzer_test.cc — SusceptibilityAnalyzer on synthetic channel
// means: streaming equals the non-streaming computation, batching does not matter, the null
// value is the floor of an unshifted comparison, shifts are seen, bad input is refused; the
// report's JSON form.
#include "server/susceptibility/analyzer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "nlohmann/json.hpp"
#include "server/susceptibility/grid_histogram.h"
#include "server/susceptibility/hellinger.h"
#include "server/susceptibility/report_json.h"

namespace segserve::susceptibility {
namespace {

// Per image, two layers: "a" with 3 channels, "b" with 2; `shift` moves layer a only.
std::vector<std::vector<std::vector<float>>> Images(int n, float shift, uint64_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<std::vector<std::vector<float>>> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({{d(rng) + shift, 2 * d(rng) + shift, d(rng) * 0.1f + 5 + shift},
                   {d(rng), d(rng) + 10}});
  }
  return out;
}

TapMeans Batch(const std::vector<std::vector<std::vector<float>>>& images, size_t from,
               size_t count) {
  TapMeans batch = {{"a", 0, 3, {}}, {"b", 0, 2, {}}};
  for (size_t i = from; i < from + count && i < images.size(); ++i) {
    for (int l = 0; l < 2; ++l) {
      batch[l].values.insert(batch[l].values.end(), images[i][l].begin(), images[i][l].end());
      batch[l].images++;
    }
  }
  return batch;
}

SusceptibilityReport Analyze(const std::vector<std::vector<std::vector<float>>>& a,
                         const std::vector<std::vector<std::vector<float>>>& b, size_t batch,
                         int bins = 0) {
  auto an = SusceptibilityAnalyzer::Create({bins});
  EXPECT_TRUE(an.ok());
  for (size_t i = 0; i < a.size(); i += batch) EXPECT_TRUE((*an)->AddSource(Batch(a, i, batch)).ok());
  for (size_t i = 0; i < b.size(); i += batch) EXPECT_TRUE((*an)->AddTarget(Batch(b, i, batch)).ok());
  auto r = (*an)->Finish();
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

TEST(AnalyzerTest, StreamingEqualsNonStreamingReference) {
  const auto a = Images(90, 0, 1), b = Images(70, 0.7f, 2);
  const SusceptibilityReport r = Analyze(a, b, 7);
  EXPECT_EQ(r.source_images, 90);
  EXPECT_EQ(r.target_images, 70);
  EXPECT_TRUE(r.auto_bins);
  EXPECT_EQ(r.bins, AutoBins(90, 70));
  // Non-streaming: every value kept, histograms built in one go, distances in double.
  for (int l = 0; l < 2; ++l) {
    const int channels = l == 0 ? 3 : 2;
    ASSERT_EQ(r.layers[l].per_channel.size(), static_cast<size_t>(channels));
    double mean = 0, null_mean = 0;
    for (int c = 0; c < channels; ++c) {
      GridHistogram all(1, 2, 8 * kMaxAutoBins), halves(1, 2, 8 * kMaxAutoBins);
      for (size_t i = 0; i < a.size(); ++i) {
        all.Add(0, &a[i][l][c]);
        halves.Add(static_cast<int>(i % 2), &a[i][l][c]);
      }
      for (const auto& img : b) all.Add(1, &img[l][c]);
      const ChannelGrid g = all.Finish(0, r.bins), h = halves.Finish(0, r.bins);
      std::vector<double> p(g.counts[0].begin(), g.counts[0].end()),
          q(g.counts[1].begin(), g.counts[1].end());
      EXPECT_NEAR(r.layers[l].per_channel[c], HellingerDistance(p, q), 1e-12);
      mean += HellingerDistance(p, q) / channels;
      null_mean += HellingerDistance(h.counts[0], h.counts[1]) / channels;
    }
    EXPECT_NEAR(r.layers[l].mean, mean, 1e-12);
    EXPECT_NEAR(r.layers[l].null_mean, null_mean, 1e-12);
  }
}

TEST(AnalyzerTest, BatchSizeDoesNotChangeTheResult) {
  const auto a = Images(50, 0, 3), b = Images(40, 0.3f, 4);
  const SusceptibilityReport one = Analyze(a, b, 1, 16), many = Analyze(a, b, 50, 16);
  for (size_t l = 0; l < one.layers.size(); ++l) {
    EXPECT_EQ(one.layers[l].per_channel, many.layers[l].per_channel);
    EXPECT_EQ(one.layers[l].null_mean, many.layers[l].null_mean);
  }
}

TEST(AnalyzerTest, ShiftedLayerStandsAboveItsNullUnshiftedDoesNot) {
  const auto a = Images(400, 0, 5), b = Images(400, 3.0f, 6);
  const SusceptibilityReport r = Analyze(a, b, 32);
  EXPECT_EQ(r.bins, 20);
  const LayerStats& shifted = r.layers[0];
  const LayerStats& same = r.layers[1];
  EXPECT_GT(shifted.mean, 0.6);  // 3, 1.5 and 30 sigma: about 0.82, 0.49, 1
  EXPECT_GT(shifted.mean, shifted.null_mean + 0.5);
  // Same distribution: near the null (halves of 200 are noisier than 400 vs 400).
  EXPECT_LT(same.mean, same.null_mean + 0.05);
  EXPECT_GT(same.null_mean, 0.0);
  EXPECT_LE(same.median, same.max);
}

TEST(AnalyzerTest, RefusesBadBinsEmptySetsAndMismatchedLayers) {
  EXPECT_EQ(SusceptibilityAnalyzer::Create({3}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SusceptibilityAnalyzer::Create({257}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto an = SusceptibilityAnalyzer::Create({8});
  ASSERT_TRUE(an.ok());
  EXPECT_EQ((*an)->Finish().status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE((*an)->AddSource(Batch(Images(4, 0, 7), 0, 4)).ok());
  EXPECT_EQ((*an)->Finish().status().message(), "target: no images");
  TapMeans wrong = Batch(Images(2, 0, 8), 0, 2);
  wrong[1].layer = "c";
  EXPECT_EQ((*an)->AddTarget(wrong).code(), absl::StatusCode::kInvalidArgument);
  TapMeans short_values = Batch(Images(2, 0, 8), 0, 2);
  short_values[0].values.pop_back();
  EXPECT_EQ((*an)->AddTarget(short_values).code(), absl::StatusCode::kInvalidArgument);
}

TEST(AnalyzerTest, MemoryIsIndependentOfTheNumberOfImages) {
  auto an = SusceptibilityAnalyzer::Create({0});
  ASSERT_TRUE(an.ok());
  const auto a = Images(100, 0, 9);
  ASSERT_TRUE((*an)->AddSource(Batch(a, 0, 100)).ok());
  const size_t bytes = (*an)->MemoryBytes();
  for (int k = 0; k < 20; ++k) ASSERT_TRUE((*an)->AddTarget(Batch(Images(100, 1, k), 0, 100)).ok());
  EXPECT_EQ((*an)->MemoryBytes(), bytes);
}

TEST(ReportJsonTest, RoundTripsWithNaNNullAsJsonNull) {
  const auto a = Images(30, 0, 10), b = Images(30, 1, 11);
  SusceptibilityReport r = Analyze(a, b, 8);
  r.model_name = "m";
  r.model_version = 3;
  r.layers[1].null_mean = std::nan("");
  const nlohmann::json j = ReportsToJson({r});
  EXPECT_TRUE(j["reports"][0]["layers"][1]["null_mean"].is_null());
  auto back = ReportsFromJson(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 1u);
  const SusceptibilityReport& s = (*back)[0];
  EXPECT_EQ(s.model_name, "m");
  EXPECT_EQ(s.model_version, 3);
  EXPECT_EQ(s.bins, r.bins);
  EXPECT_TRUE(std::isnan(s.layers[1].null_mean));
  EXPECT_DOUBLE_EQ(s.layers[0].mean, r.layers[0].mean);
  EXPECT_EQ(s.layers[0].per_channel, r.layers[0].per_channel);
  EXPECT_NE(FormatReport(r).find("a:"), std::string::npos);
  EXPECT_FALSE(ReportFromJson(nlohmann::json{{"model", 1}}).ok());
}

}  // namespace
}  // namespace segserve::susceptibility
