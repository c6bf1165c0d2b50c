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
  return model_input::ToJson(model_input::ReferenceStatsFromSamples(layers, bins));
}

}  // namespace segserve::training
