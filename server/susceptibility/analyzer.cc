#include "server/susceptibility/analyzer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/susceptibility/hellinger.h"

namespace segserve::susceptibility {
namespace {

// Fine bins per grid: 8x the largest bin count that Finish may ask for (see grid_histogram.h).
int FineBins(int bins) { return 8 * (bins > 0 ? bins : kMaxAutoBins); }

struct Summary {
  double mean = 0, median = 0, max = 0;
};

Summary Summarise(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) {
    sum += x;
    s.max = std::max(s.max, x);
  }
  s.mean = sum / v.size();
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return s;
}

}  // namespace

absl::Status ValidateBins(int bins) {
  if (bins == 0 || (bins >= kMinBins && bins <= kMaxBins)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("bins: must be 0 (automatic) or ", kMinBins,
                                                 "..", kMaxBins, ", got ", bins));
}

absl::StatusOr<std::unique_ptr<SusceptibilityAnalyzer>> SusceptibilityAnalyzer::Create(
    const AnalyzerOptions& options) {
  RETURN_IF_ERROR(ValidateBins(options.bins));
  return std::unique_ptr<SusceptibilityAnalyzer>(new SusceptibilityAnalyzer(options));
}

absl::Status SusceptibilityAnalyzer::Check(const TapMeans& batch) {
  for (const LayerMeans& l : batch) {
    if (l.images < 0 || l.channels <= 0 ||
        l.values.size() != static_cast<size_t>(l.images) * l.channels) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", l.layer, ": ", l.values.size(),
                                                     " values for ", l.images, " images x ",
                                                     l.channels, " channels"));
    }
    if (l.images != batch.front().images) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", l.layer, ": ", l.images,
                                                     " images, layer ", batch.front().layer,
                                                     " ", batch.front().images));
    }
  }
  if (layers_.empty()) {
    layers_.reserve(batch.size());
    const int fine = FineBins(options_.bins);
    for (const LayerMeans& l : batch) {
      layers_.push_back(Layer{l.layer, l.channels, GridHistogram(l.channels, 2, fine),
                              GridHistogram(l.channels, 2, fine)});
    }
    return absl::OkStatus();
  }
  if (batch.size() != layers_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch has ", batch.size(), " layers, the first had ", layers_.size()));
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].layer != layers_[i].name || batch[i].channels != layers_[i].channels) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", i, " is ", batch[i].layer, " with ", batch[i].channels,
          " channels, the first batch had ", layers_[i].name, " with ", layers_[i].channels));
    }
  }
  return absl::OkStatus();
}

absl::Status SusceptibilityAnalyzer::AddSource(const TapMeans& batch) {
  if (batch.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(Check(batch));
  const int n = batch.front().images;
  for (size_t l = 0; l < batch.size(); ++l) {
    for (int i = 0; i < n; ++i) {
      layers_[l].main.Add(0, batch[l].image(i));
      layers_[l].null.Add(static_cast<int>((source_images_ + i) % 2), batch[l].image(i));
    }
  }
  source_images_ += n;
  return absl::OkStatus();
}

absl::Status SusceptibilityAnalyzer::AddTarget(const TapMeans& batch) {
  if (batch.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(Check(batch));
  const int n = batch.front().images;
  for (size_t l = 0; l < batch.size(); ++l) {
    for (int i = 0; i < n; ++i) layers_[l].main.Add(1, batch[l].image(i));
  }
  target_images_ += n;
  return absl::OkStatus();
}

absl::StatusOr<SusceptibilityReport> SusceptibilityAnalyzer::Finish() const {
  if (source_images_ == 0) return absl::InvalidArgumentError("source: no images");
  if (target_images_ == 0) return absl::InvalidArgumentError("target: no images");
  SusceptibilityReport report;
  report.source_images = source_images_;
  report.target_images = target_images_;
  report.auto_bins = options_.bins == 0;
  report.bins = options_.bins ? options_.bins : AutoBins(source_images_, target_images_);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const Layer& layer : layers_) {
    LayerStats stats;
    stats.layer = layer.name;
    stats.channels = layer.channels;
    stats.per_channel.resize(layer.channels);
    std::vector<double> null(layer.channels);
    for (int c = 0; c < layer.channels; ++c) {
      const ChannelGrid g = layer.main.Finish(c, report.bins);
      stats.per_channel[c] = HellingerDistance(g.counts[0], g.counts[1]);
      const ChannelGrid h = layer.null.Finish(c, report.bins);
      null[c] = HellingerDistance(h.counts[0], h.counts[1]);
    }
    const Summary s = Summarise(stats.per_channel);
    stats.mean = s.mean;
    stats.median = s.median;
    stats.max = s.max;
    if (source_images_ >= 2) {
      const Summary ns = Summarise(null);
      stats.null_mean = ns.mean;
      stats.null_median = ns.median;
      stats.null_max = ns.max;
    } else {
      stats.null_mean = stats.null_median = stats.null_max = nan;
    }
    report.layers.push_back(std::move(stats));
  }
  return report;
}

size_t SusceptibilityAnalyzer::MemoryBytes() const {
  size_t bytes = 0;
  for (const Layer& l : layers_) bytes += l.main.MemoryBytes() + l.null.MemoryBytes();
  return bytes;
}

}  // namespace segserve::susceptibility
