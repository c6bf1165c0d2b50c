// File: tests/susceptibility/hellinger_test.cc — the Hellinger distance and the automatic bin
// count.
#include "server/susceptibility/hellinger.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace segserve::susceptibility {
namespace {

TEST(HellingerTest, IdenticalHistogramsAreZero) {
  const std::vector<uint32_t> p = {3, 0, 7, 1, 9};
  EXPECT_DOUBLE_EQ(HellingerDistance(p, p), 0.0);
  // Normalisation: a multiple of the same shape is the same distribution.
  const std::vector<uint32_t> q = {6, 0, 14, 2, 18};
  EXPECT_NEAR(HellingerDistance(p, q), 0.0, 1e-7);
}

TEST(HellingerTest, DisjointHistogramsAreOne) {
  EXPECT_DOUBLE_EQ(HellingerDistance(std::vector<uint32_t>{5, 2, 0, 0},
                                     std::vector<uint32_t>{0, 0, 1, 9}),
                   1.0);
}

TEST(HellingerTest, EmptyHistograms) {
  const std::vector<uint32_t> zero(4, 0), some = {1, 0, 0, 0};
  EXPECT_EQ(HellingerDistance(zero, zero), 0.0);
  EXPECT_EQ(HellingerDistance(zero, some), 1.0);
}

TEST(HellingerTest, SymmetricAndMatchesDirectDoubleComputation) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<uint32_t> count(0, 50);
  for (int trial = 0; trial < 200; ++trial) {
    const int bins = 4 + trial % 60;
    std::vector<uint32_t> p(bins), q(bins);
    for (int b = 0; b < bins; ++b) {
      p[b] = count(rng);
      q[b] = trial % 3 == 0 ? count(rng) / 5 : count(rng);
    }
    double sp = 0, sq = 0;
    for (int b = 0; b < bins; ++b) {
      sp += p[b];
      sq += q[b];
    }
    double bc = 0;
    for (int b = 0; b < bins; ++b) bc += std::sqrt((p[b] / sp) * (q[b] / sq));
    const double direct = std::sqrt(std::max(0.0, 1.0 - bc));
    const double h = HellingerDistance(p, q);
    EXPECT_NEAR(h, direct, 1e-12);
    EXPECT_DOUBLE_EQ(h, HellingerDistance(q, p));
    EXPECT_GE(h, 0.0);
    EXPECT_LE(h, 1.0);
    std::vector<double> pd(p.begin(), p.end()), qd(q.begin(), q.end());
    EXPECT_NEAR(HellingerDistance(pd, qd), direct, 1e-12);
  }
}

TEST(HellingerTest, AutoBinsFollowSqrtOfSmallerSetClamped) {
  EXPECT_EQ(AutoBins(10, 1000), 8);      // sqrt(10) = 3.2 -> floor of 8
  EXPECT_EQ(AutoBins(400, 900), 20);     // sqrt(400)
  EXPECT_EQ(AutoBins(1000, 1000), 32);   // 31.6
  EXPECT_EQ(AutoBins(100000, 5000), 64); // capped
  EXPECT_EQ(AutoBins(0, 0), 8);
}

}  // namespace
}  // namespace segserve::susceptibility
