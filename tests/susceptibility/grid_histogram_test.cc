// File: tests/susceptibility/grid_histogram_test.cc — the streaming shared-grid histogram:
// streaming equals keeping every value, order and batching do not matter, edges cover the
// data, the bin count stays within [bins, 1.5 bins], memory does not grow with the data.
#include "server/susceptibility/grid_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace segserve::susceptibility {
namespace {

// Values of 3 channels with very different scales and signs, one constant channel.
std::vector<std::vector<float>> Values(int n, uint64_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> a(0.5f, 0.2f), b(-300.f, 40.f), c(1e-4f, 3e-5f);
  std::vector<std::vector<float>> out;
  for (int i = 0; i < n; ++i) out.push_back({a(rng), b(rng), c(rng), 2.0f});
  return out;
}

void ExpectSameGrid(const ChannelGrid& x, const ChannelGrid& y) {
  EXPECT_EQ(x.lo, y.lo);
  EXPECT_EQ(x.width, y.width);
  EXPECT_EQ(x.bins, y.bins);
  EXPECT_EQ(x.counts, y.counts);
}

TEST(GridHistogramTest, StreamingEqualsAllValuesKeptAndBinnedDirectly) {
  const int bins = 16;
  auto values = Values(500, 1);
  GridHistogram h(4, 2, 8 * bins);
  for (size_t i = 0; i < values.size(); ++i) h.Add(static_cast<int>(i % 3 == 0), values[i].data());
  for (int c = 0; c < 4; ++c) {
    const ChannelGrid g = h.Finish(c, bins);
    float mn = values[0][c], mx = mn;
    for (const auto& v : values) {
      mn = std::min(mn, v[c]);
      mx = std::max(mx, v[c]);
    }
    // Edges cover every value; the requested resolution or a little finer.
    EXPECT_LE(g.lo, mn);
    if (c == 3) {
      EXPECT_EQ(g.bins, 1);  // a constant channel occupies one fine bin
    } else {
      EXPECT_GT(g.lo + g.width * g.bins, mx);
      EXPECT_GE(g.bins, bins);
      EXPECT_LE(g.bins, bins * 3 / 2);
    }
    // The non-streaming computation: every value binned on those edges.
    std::vector<std::vector<uint32_t>> direct(2, std::vector<uint32_t>(g.bins, 0));
    for (size_t i = 0; i < values.size(); ++i) {
      const double x = values[i][c];
      const int b = static_cast<int>(std::floor((x - g.lo) / g.width));
      ASSERT_GE(b, 0);
      ASSERT_LT(b, g.bins);
      direct[i % 3 == 0][b]++;
    }
    EXPECT_EQ(g.counts, direct) << "channel " << c;
  }
  EXPECT_EQ(h.count(0) + h.count(1), 500);
}

TEST(GridHistogramTest, OrderAndBatchingDoNotMatter) {
  auto values = Values(400, 2);
  GridHistogram forward(4, 2, 128), shuffled(4, 2, 128);
  std::vector<int> order(values.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  for (int i : order) forward.Add(i % 2, values[i].data());
  std::mt19937 rng(3);
  std::shuffle(order.begin(), order.end(), rng);
  for (int i : order) shuffled.Add(i % 2, values[i].data());
  for (int c = 0; c < 4; ++c) {
    for (int bins : {4, 8, 16}) ExpectSameGrid(forward.Finish(c, bins), shuffled.Finish(c, bins));
  }
}

TEST(GridHistogramTest, GrowsAcrossOrdersOfMagnitudeWithoutLosingCounts) {
  GridHistogram h(1, 1, 64);
  const std::vector<float> xs = {1e-6f, 2e-6f, -1e-3f, 5.f, 1e4f, -2e4f, 0.f};
  for (float x : xs) h.Add(0, &x);
  const ChannelGrid g = h.Finish(0, 8);
  uint32_t total = 0;
  for (uint32_t n : g.counts[0]) total += n;
  EXPECT_EQ(total, xs.size());
  EXPECT_LE(g.lo, -2e4);
  EXPECT_GT(g.lo + g.width * g.bins, 1e4);
}

// Regression (UBSan in the test build): a first value of 0 sets the finest exponent, so a
// later 1e30 overflowed int64 in the bin index and re-binning shifted by > 63 bits.
TEST(GridHistogramTest, ExtremeJumpsAfterAZeroKeepEveryCount) {
  GridHistogram h(1, 2, 64);
  const std::vector<float> xs = {0.f, 1e-30f, 7.f, 1e30f, -3e38f, 3e38f, 0.f, -1e-20f};
  for (size_t i = 0; i < xs.size(); ++i) h.Add(static_cast<int>(i % 2), &xs[i]);
  const ChannelGrid g = h.Finish(0, 8);
  uint32_t total = 0;
  for (const auto& set : g.counts) {
    for (uint32_t n : set) total += n;
  }
  EXPECT_EQ(total, xs.size());
  EXPECT_LE(g.lo, -3e38);
  EXPECT_GE(g.lo + g.width * g.bins, 3e38);
}

TEST(GridHistogramTest, NonFiniteValuesAreSkippedAndCounted) {
  GridHistogram h(2, 1, 64);
  const float v[2] = {std::nanf(""), 1.0f};
  h.Add(0, v);
  EXPECT_EQ(h.nonfinite(), 1);
  EXPECT_TRUE(h.Finish(0, 8).counts[0].empty());
  EXPECT_EQ(h.Finish(1, 8).counts[0], std::vector<uint32_t>{1});
}

TEST(GridHistogramTest, MemoryDoesNotGrowWithTheNumberOfValues) {
  GridHistogram h(64, 2, 512);
  const size_t before = h.MemoryBytes();
  std::mt19937 rng(4);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(64);
  for (int i = 0; i < 20000; ++i) {
    for (float& x : v) x = d(rng) * (1 + i / 1000);
    h.Add(i % 2, v.data());
  }
  EXPECT_EQ(h.MemoryBytes(), before);
}

}  // namespace
}  // namespace segserve::susceptibility
