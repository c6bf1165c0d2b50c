// File: server/susceptibility/hellinger.h — the Hellinger distance between two histograms on
// the same bins, and the automatic bin count. Torch-free.
#pragma once

#include <cstdint>
#include <vector>

namespace segserve::susceptibility {

// H(P, Q) = sqrt(1 - sum_b sqrt(p_b q_b)) with p, q the histograms normalised to sum 1;
// in [0, 1]: 0 for identical distributions, 1 for disjoint supports. Both histograms must
// have the same length (the shorter one is read as zero-padded). An empty histogram (all
// zero) has no distribution: the distance is 0 when both are empty, 1 when only one is.
double HellingerDistance(const uint32_t* p, const uint32_t* q, int bins);
double HellingerDistance(const std::vector<uint32_t>& p, const std::vector<uint32_t>& q);
// On normalised (or unnormalised) double weights, the same definition.
double HellingerDistance(const std::vector<double>& p, const std::vector<double>& q);

inline constexpr int kMinBins = 4;
inline constexpr int kMaxBins = 256;
inline constexpr int kMinAutoBins = 8;
inline constexpr int kMaxAutoBins = 64;

// The automatic bin count for two sets of n_a and n_b images: round(sqrt(min(n_a, n_b)))
// clamped to [kMinAutoBins, kMaxAutoBins] (see docs/susceptibility.md).
int AutoBins(int64_t n_a, int64_t n_b);

}  // namespace segserve::susceptibility
