#include "server/experiment/stats.h"

#include <cmath>

namespace segserve::experiment {
namespace {

// t(0.975, df) for df = 1..30, checked against a numerical inversion of the t CDF
// (tests/experiment/stats_test.cc lists the reference values).
constexpr double kT975[] = {12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912,
                            2.364624,  2.306004, 2.262157, 2.228139, 2.200985, 2.178813,
                            2.160369,  2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
                            2.093024,  2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
                            2.059539,  2.055529, 2.051831, 2.048407, 2.045230, 2.042272};
constexpr int kTableDf = sizeof(kT975) / sizeof(kT975[0]);
constexpr double kNormal975 = 1.959964;

}  // namespace

double TCritical95(int df) {
  if (df < 1) return 0;
  if (df <= kTableDf) return kT975[df - 1];
  return kNormal975;
}

Summary Summarize(const std::vector<double>& values) {
  Summary s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / s.n;
  if (s.n < 2) return s;
  double ss = 0;
  for (double v : values) ss += (v - s.mean) * (v - s.mean);
  s.sd = std::sqrt(ss / (s.n - 1));
  s.half_width = TCritical95(s.n - 1) * s.sd / std::sqrt(static_cast<double>(s.n));
  s.interval = true;
  return s;
}

PairedDifference PairedDiff(const SeedValues& values, const SeedValues& baseline) {
  PairedDifference d;
  std::vector<double> diffs;
  for (const auto& [seed, value] : values) {
    auto it = baseline.find(seed);
    if (it == baseline.end()) continue;
    diffs.push_back(value - it->second);
    d.better += value > it->second;
  }
  d.pairs = static_cast<int>(diffs.size());
  d.diff = Summarize(diffs);
  return d;
}

Robustness RobustnessOf(double in_domain, const std::vector<double>& shift_levels) {
  Robustness r;
  r.shift_mean = Summarize(shift_levels).mean;
  if (in_domain > 0) r.retained = r.shift_mean / in_domain;
  return r;
}

nlohmann::json SummaryJson(const Summary& s) {
  return {{"n", s.n},
          {"mean", s.mean},
          {"sd", s.sd},
          {"half_width", s.half_width},
          {"ci95_low", s.low()},
          {"ci95_high", s.high()},
          {"interval", s.interval}};
}

nlohmann::json PairedJson(const PairedDifference& d) {
  nlohmann::json j = SummaryJson(d.diff);
  j["better"] = d.better;
  j["pairs"] = d.pairs;
  return j;
}

}  // namespace segserve::experiment
