#include "server/susceptibility/grid_histogram.h"

#include <algorithm>
#include <cmath>

namespace segserve::susceptibility {
namespace {

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Index of x's fine bin at exponent e. A value far outside the current window (a first
// value near 0 set a tiny e, then 1e5 arrives) would not fit in int64: it is clamped to
// +-2^62, which is outside every window and sends the caller to Grow().
int64_t FineIndex(float x, int e) {
  constexpr double kLimit = 4611686018427387904.0;  // 2^62
  const double v = std::floor(std::ldexp(static_cast<double>(x), -e));
  return static_cast<int64_t>(std::clamp(v, -kLimit, kLimit));
}

// floor(v / 2^shift) for shift >= 0; shifts of 64 and more are defined here (0 or -1).
int64_t FloorShift(int64_t v, int shift) {
  if (shift >= 63) return v < 0 ? -1 : 0;
  return v >> shift;  // arithmetic shift = floor division
}

// Resolution floor: bins never narrower than 2^-20 of the largest magnitude (float means
// carry ~2^-24 relative noise; finer bins would only separate rounding).
int MinExponent(float lo, float hi) {
  const float mag = std::max({std::fabs(lo), std::fabs(hi), 1e-30f});
  return std::ilogb(mag) - 20;
}

}  // namespace

GridHistogram::GridHistogram(int channels, int sets, int fine_bins)
    : channels_(std::max(0, channels)),
      sets_(std::max(1, sets)),
      fine_bins_(std::max(8, fine_bins + (fine_bins & 1))),
      state_(channels_),
      counts_(static_cast<size_t>(channels_) * sets_ * fine_bins_, 0),
      set_counts_(sets_, 0) {}

size_t GridHistogram::MemoryBytes() const {
  return counts_.size() * sizeof(uint32_t) + state_.size() * sizeof(State);
}

void GridHistogram::Grow(int channel, float lo, float hi) {
  State& s = state_[channel];
  const int64_t half = fine_bins_ / 2;
  int e = std::max(s.any ? s.e : MinExponent(lo, hi), MinExponent(lo, hi));
  int64_t start = 0;
  while (true) {
    const int64_t kmin = FineIndex(lo, e), kmax = FineIndex(hi, e);
    start = FloorDiv(kmin, half) * half;
    if (kmax < start + fine_bins_) break;
    ++e;
  }
  if (s.any && (e != s.e || start != s.start)) {
    std::vector<uint32_t> old(fine_bins_);
    for (int set = 0; set < sets_; ++set) {
      uint32_t* c = Counts(channel, set);
      std::copy(c, c + fine_bins_, old.begin());
      std::fill(c, c + fine_bins_, 0u);
      for (int i = 0; i < fine_bins_; ++i) {
        if (old[i] == 0) continue;
        const int64_t g = FloorShift(s.start + i, e - s.e);
        c[g - start] += old[i];
      }
    }
  }
  s.e = e;
  s.start = start;
  s.min = lo;
  s.max = hi;
  s.any = true;
}

void GridHistogram::Add(int set, const float* values) {
  ++set_counts_[set];
  for (int c = 0; c < channels_; ++c) {
    const float x = values[c];
    if (!std::isfinite(x)) {
      ++nonfinite_;
      continue;
    }
    State& s = state_[c];
    if (!s.any || x < s.min || x > s.max) {
      const float lo = s.any ? std::min(s.min, x) : x, hi = s.any ? std::max(s.max, x) : x;
      // Inside the current window (and above the resolution floor) nothing moves.
      const int64_t k = s.any ? FineIndex(x, s.e) - s.start : -1;
      if (k >= 0 && k < fine_bins_ && MinExponent(lo, hi) <= s.e) {
        s.min = lo;
        s.max = hi;
      } else {
        Grow(c, lo, hi);
      }
    }
    Counts(c, set)[FineIndex(x, s.e) - s.start]++;
  }
}

ChannelGrid GridHistogram::Finish(int channel, int bins) const {
  ChannelGrid out;
  const State& s = state_[channel];
  out.counts.assign(sets_, {});
  if (!s.any) return out;
  bins = std::max(1, bins);
  const int64_t a = FineIndex(s.min, s.e) - s.start, b = FineIndex(s.max, s.e) - s.start;
  const int64_t k = b - a + 1;
  const int64_t g = std::max<int64_t>(1, k / bins);
  out.bins = static_cast<int>((k + g - 1) / g);
  out.lo = std::ldexp(static_cast<double>(s.start + a), s.e);
  out.width = std::ldexp(static_cast<double>(g), s.e);
  for (int set = 0; set < sets_; ++set) {
    const uint32_t* c = Counts(channel, set);
    std::vector<uint32_t>& h = out.counts[set];
    h.assign(out.bins, 0u);
    for (int64_t i = a; i <= b; ++i) h[(i - a) / g] += c[i];
  }
  return out;
}

}  // namespace segserve::susceptibility
