// File: server/training/metrics_util.cc — confusion matrix and reference statistics.
#include "server/training/metrics_util.h"

#include <algorithm>
#include <cmath>

namespace segserve::training {

void ConfusionMatrix::Add(const uint8_t* truth, const uint8_t* pred, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (truth[i] < classes_ && pred[i] < classes_) ++counts_[truth[i] * classes_ + pred[i]];
  }
}

void ConfusionMatrix::Add(const ConfusionMatrix& other) {
  for (size_t i = 0; i < counts_.size() && i < other.counts_.size(); ++i) {
    counts_[i] += other.counts_[i];
  }
}

double ConfusionMatrix::ClassIoU(int c) const {
  int64_t tp = counts_[c * classes_ + c], fp = 0, fn = 0;
  for (int k = 0; k < classes_; ++k) {
    if (k == c) continue;
    fn += counts_[c * classes_ + k];
    fp += counts_[k * classes_ + c];
  }
  const int64_t uni = tp + fp + fn;
  return uni == 0 ? -1.0 : static_cast<double>(tp) / static_cast<double>(uni);
}

double ConfusionMatrix::MeanForegroundIoU() const {
  double sum = 0;
  int n = 0;
  for (int c = 1; c < classes_; ++c) {
    const double iou = ClassIoU(c);
    if (iou >= 0) {
      sum += iou;
      ++n;
    }
  }
  return n == 0 ? 0.0 : sum / n;
}

nlohmann::json ReferenceStatsJson(const std::vector<LayerReference>& layers, int bins) {
  nlohmann::json out = {{"bins", bins}, {"images", 0}, {"layers", nlohmann::json::array()}};
  for (const LayerReference& layer : layers) {
    const size_t n = layer.samples.size();
    out["images"] = n;
    std::vector<float> mean(layer.channels), stdv(layer.channels), lo(layer.channels),
        hi(layer.channels);
    nlohmann::json hist = nlohmann::json::array();
    for (int c = 0; c < layer.channels; ++c) {
      double sum = 0, sq = 0;
      float mn = n ? layer.samples[0][c] : 0.f, mx = mn;
      for (const auto& s : layer.samples) {
        sum += s[c];
        sq += static_cast<double>(s[c]) * s[c];
        mn = std::min(mn, s[c]);
        mx = std::max(mx, s[c]);
      }
      const double m = n ? sum / n : 0.0;
      mean[c] = static_cast<float>(m);
      stdv[c] = static_cast<float>(n ? std::sqrt(std::max(0.0, sq / n - m * m)) : 0.0);
      lo[c] = mn;
      hi[c] = mx;
      std::vector<int> counts(bins, 0);
      const double width = (static_cast<double>(mx) - mn) / bins;
      for (const auto& s : layer.samples) {
        int b = width > 0 ? static_cast<int>((s[c] - mn) / width) : 0;
        counts[std::clamp(b, 0, bins - 1)]++;
      }
      hist.push_back(std::move(counts));
    }
    out["layers"].push_back({{"name", layer.name},
                             {"channels", layer.channels},
                             {"mean", mean},
                             {"std", stdv},
                             {"min", lo},
                             {"max", hi},
                             {"hist", std::move(hist)}});
  }
  return out;
}

}  // namespace segserve::training
