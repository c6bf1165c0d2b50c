// File: server/susceptibility/analyzer.h — the streaming layer-susceptibility analysis of
// ../../docs/susceptibility.md: per-image channel means of every tapped layer go in batch by
// batch for a source set A and a target set B; out comes, per layer, the Hellinger distance of
// A's and B's per-channel distributions (mean, median and max over channels) next to its
// null value (the same statistic between A's even and odd images). Torch-free: callers turn
// activations into channel means with model_input::ChannelMeans (server/model_input/channel_means.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/model_input/tap_means.h"
#include "server/susceptibility/grid_histogram.h"

namespace segserve::susceptibility {

// The tap means type lives in the model-input module (shared with inference and training).
using LayerMeans = model_input::LayerMeans;
using TapMeans = model_input::TapMeans;

struct LayerStats {
  std::string layer;
  int channels = 0;
  // Hellinger distance A vs B over channels.
  double mean = 0, median = 0, max = 0;
  // The same statistics between the even- and odd-numbered source images (the floor a
  // distance of this sample size and bin count shows without any shift); NaN with fewer than
  // two source images.
  double null_mean = 0, null_median = 0, null_max = 0;
  std::vector<double> per_channel;  // A vs B, one per channel
};

struct SusceptibilityReport {
  std::string model_name;
  int64_t model_version = 0;
  int64_t source_images = 0;
  int64_t target_images = 0;
  int bins = 0;            // the bin count used (the automatic one resolved)
  bool auto_bins = false;  // whether it was chosen automatically
  std::vector<LayerStats> layers;  // tap order
};

struct AnalyzerOptions {
  // 4..256, or 0 for automatic: round(sqrt(min(|A|, |B|))) clamped to 8..64 (AutoBins).
  int bins = 0;
};

// OK, or InvalidArgument naming `bins` and the accepted values.
absl::Status ValidateBins(int bins);

class SusceptibilityAnalyzer {
 public:
  static absl::StatusOr<std::unique_ptr<SusceptibilityAnalyzer>> Create(
      const AnalyzerOptions& options);

  // The first batch fixes the layers (names, channel counts); later batches must match
  // (InvalidArgument otherwise). Source image i (counted over all source batches) also goes
  // to the even or odd null half.
  absl::Status AddSource(const TapMeans& batch);
  absl::Status AddTarget(const TapMeans& batch);

  // InvalidArgument ("source: no images" / "target: ...") when a set is empty. Can be called
  // again after more batches.
  absl::StatusOr<SusceptibilityReport> Finish() const;

  int64_t source_images() const { return source_images_; }
  int64_t target_images() const { return target_images_; }
  // Bytes held by the histograms (independent of the number of images).
  size_t MemoryBytes() const;

 private:
  explicit SusceptibilityAnalyzer(const AnalyzerOptions& options) : options_(options) {}
  struct Layer {
    std::string name;
    int channels = 0;
    GridHistogram main;  // sets: 0 = source, 1 = target
    GridHistogram null;  // sets: 0 = even source images, 1 = odd
  };
  absl::Status Check(const TapMeans& batch);

  AnalyzerOptions options_;
  std::vector<Layer> layers_;
  int64_t source_images_ = 0;
  int64_t target_images_ = 0;
};

}  // namespace segserve::susceptibility
