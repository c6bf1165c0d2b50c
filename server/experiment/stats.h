// File: server/experiment/stats.h — aggregation of an experiment's per-seed results: mean,
// sample standard deviation and a 95% confidence interval of the mean, paired per-seed
// differences against a baseline, and the robustness summary of Wilm et al. (mean IoU over
// shift levels and the fraction of in-domain IoU it retains). Pure functions, no torch.
//
// Method (docs/experiments.md):
//   mean  = sum(x) / n
//   sd    = sqrt(sum((x - mean)^2) / (n - 1))            (sample sd, Bessel's correction)
//   95% interval of the mean = mean +/- t(0.975, n - 1) * sd / sqrt(n)
// t(0.975, df) is Student's t quantile, tabulated exactly (6 decimals) for df = 1..30; beyond
// 30 the normal quantile 1.959964 is used (at df = 31 the t quantile is 2.0395, so the
// interval is at most 4% too narrow there, and the error shrinks as df grows). With n < 2 there
// is no spread to estimate: sd and the half-width are 0 and `interval` is false, so a report
// can say "n = 1, no interval" instead of showing a zero-width interval.
// Seeds are the unit of replication: each seed trains one model, so the interval describes the
// seed-to-seed variation of a configuration, not the pixel-level noise of one evaluation.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "nlohmann/json.hpp"

namespace segserve::experiment {

// Two-sided 95% critical value of Student's t with `df` degrees of freedom (see above).
// df < 1 returns 0 (no interval).
double TCritical95(int df);

struct Summary {
  int n = 0;
  double mean = 0;
  double sd = 0;          // sample sd; 0 when n < 2
  double half_width = 0;  // t(0.975, n-1) * sd / sqrt(n); 0 when n < 2
  bool interval = false;  // n >= 2
  double low() const { return mean - half_width; }
  double high() const { return mean + half_width; }
};

// Summary of `values` (n = values.size(); n = 0 gives all zeros).
Summary Summarize(const std::vector<double>& values);

// Per-seed values of one configuration (seed -> value).
using SeedValues = std::map<uint64_t, double>;

struct PairedDifference {
  Summary diff;    // of value[seed] - baseline[seed] over seeds present in both
  int better = 0;  // seeds where value > baseline
  int pairs = 0;   // seeds present in both (diff.n)
};

// Differences paired by seed: each seed's model against the baseline model trained with the
// same seed (same initialisation draws and batch order), which removes the seed-to-seed
// variation both share. Seeds missing on either side are left out.
PairedDifference PairedDiff(const SeedValues& values, const SeedValues& baseline);

// Mean over shift levels of one shift kind, and that mean as a fraction of the in-domain IoU
// (the paper's robustness summary). `retained` is unset when in_domain <= 0.
struct Robustness {
  double shift_mean = 0;
  std::optional<double> retained;
};
Robustness RobustnessOf(double in_domain, const std::vector<double>& shift_levels);

// {"n", "mean", "sd", "ci95_low", "ci95_high", "half_width", "interval"}.
nlohmann::json SummaryJson(const Summary& s);
// {"n", "mean", "sd", "ci95_low", "ci95_high", "half_width", "interval", "better", "pairs"}.
nlohmann::json PairedJson(const PairedDifference& d);

}  // namespace segserve::experiment
