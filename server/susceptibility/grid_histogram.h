// File: server/susceptibility/grid_histogram.h — streaming histograms of many channels, each
// channel holding several sets (e.g. source and target) on one shared grid whose range grows
// with the data. Memory is O(channels x sets x fine_bins), independent of the number of values.
//
// The grid of a channel is dyadic: fine bins of width 2^e at global positions k * 2^e, and a
// window of `fine_bins` of them starting at a multiple of fine_bins / 2. After any sequence of
// values the state is the one for the smallest e at which the window holds [min, max] of every
// value seen so far (and at least a resolution floor of 2^-20 of the largest magnitude), so the
// result depends only on the multiset of values, never on their order or batching: streaming
// equals computing the same histograms with every value kept. Growing e merges adjacent bins
// exactly (bin k at 2^e lies in bin floor(k / 2) at 2^(e+1)). The occupied part of the window
// spans more than a quarter of it, so Finish(bins) with fine_bins >= 8 * bins can group it
// into between `bins` and 1.5 x `bins` equal bins (docs/susceptibility.md).
// Thread-compatible.
#pragma once

#include <cstdint>
#include <vector>

namespace segserve::susceptibility {

// A channel's final histograms on shared edges lo + i * width, i = 0..bins.
struct ChannelGrid {
  double lo = 0;
  double width = 0;  // 0 when the channel has no values
  int bins = 0;
  std::vector<std::vector<uint32_t>> counts;  // [set][bin]
};

class GridHistogram {
 public:
  // `fine_bins` is rounded up to an even number >= 8.
  GridHistogram(int channels, int sets, int fine_bins);

  // Adds one value per channel (values[c], c < channels) to `set`. Non-finite values are
  // skipped and counted.
  void Add(int set, const float* values);

  // Groups the occupied fine bins of `channel` into `bins` or slightly more equal bins
  // (exactly `bins`..1.5 x `bins` when fine_bins >= 8 x bins) starting at the smallest value.
  ChannelGrid Finish(int channel, int bins) const;

  int channels() const { return channels_; }
  int sets() const { return sets_; }
  int fine_bins() const { return fine_bins_; }
  int64_t count(int set) const { return set_counts_[set]; }
  int64_t nonfinite() const { return nonfinite_; }
  size_t MemoryBytes() const;

 private:
  struct State {
    bool any = false;
    float min = 0, max = 0;
    int e = 0;          // fine bin width 2^e
    int64_t start = 0;  // global index (at 2^e) of the window's first fine bin
  };
  void Grow(int channel, float lo, float hi);
  uint32_t* Counts(int channel, int set) {
    return &counts_[(static_cast<size_t>(channel) * sets_ + set) * fine_bins_];
  }
  const uint32_t* Counts(int channel, int set) const {
    return &counts_[(static_cast<size_t>(channel) * sets_ + set) * fine_bins_];
  }

  int channels_, sets_, fine_bins_;
  std::vector<State> state_;
  std::vector<uint32_t> counts_;
  std::vector<int64_t> set_counts_;
  int64_t nonfinite_ = 0;
};

}  // namespace segserve::susceptibility
