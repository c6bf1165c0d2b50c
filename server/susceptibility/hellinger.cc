#include "server/susceptibility/hellinger.h"

#include <algorithm>
#include <cmath>

namespace segserve::susceptibility {
namespace {

template <typename T>
double Distance(const T* p, const T* q, int np, int nq) {
  double sp = 0, sq = 0;
  for (int b = 0; b < np; ++b) sp += static_cast<double>(p[b]);
  for (int b = 0; b < nq; ++b) sq += static_cast<double>(q[b]);
  if (sp <= 0 || sq <= 0) return (sp <= 0 && sq <= 0) ? 0.0 : 1.0;
  double bc = 0;
  const int n = std::min(np, nq);
  for (int b = 0; b < n; ++b) bc += std::sqrt(static_cast<double>(p[b]) * static_cast<double>(q[b]));
  bc /= std::sqrt(sp * sq);
  // Rounding can push the coefficient a hair above 1.
  return std::sqrt(std::max(0.0, 1.0 - bc));
}

}  // namespace

double HellingerDistance(const uint32_t* p, const uint32_t* q, int bins) {
  return Distance(p, q, bins, bins);
}

double HellingerDistance(const std::vector<uint32_t>& p, const std::vector<uint32_t>& q) {
  return Distance(p.data(), q.data(), static_cast<int>(p.size()), static_cast<int>(q.size()));
}

double HellingerDistance(const std::vector<double>& p, const std::vector<double>& q) {
  return Distance(p.data(), q.data(), static_cast<int>(p.size()), static_cast<int>(q.size()));
}

int AutoBins(int64_t n_a, int64_t n_b) {
  const double n = static_cast<double>(std::max<int64_t>(0, std::min(n_a, n_b)));
  const int bins = static_cast<int>(std::lround(std::sqrt(n)));
  return std::clamp(bins, kMinAutoBins, kMaxAutoBins);
}

}  // namespace segserve::susceptibility
