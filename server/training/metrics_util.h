// File: server/training/metrics_util.h — torch-free evaluation helpers: a confusion matrix
// with per-class and mean foreground IoU, and the reference activation statistics stored with
// every trained model for drift monitoring.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "server/model_input/reference_stats.h"

namespace segserve::training {

// Pixel counts accumulated over a whole split (a data-set-level IoU, not a mean of per-image
// IoUs). Class 0 is the background.
class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int classes) : classes_(classes), counts_(classes * classes, 0) {}
  // `truth` and `pred` hold class ids; ids >= classes are ignored.
  void Add(const uint8_t* truth, const uint8_t* pred, size_t n);
  void Add(const ConfusionMatrix& other);
  // TP / (TP + FP + FN); -1 when the class appears in neither truth nor prediction.
  double ClassIoU(int c) const;
  // Mean of ClassIoU over foreground classes 1..classes-1 that are defined (0 if none).
  double MeanForegroundIoU() const;
  int classes() const { return classes_; }

 private:
  int classes_;
  std::vector<int64_t> counts_;  // [truth * classes + pred]
};

// One layer's per-image channel means; the reference statistics record and its schema are
// the model-input module's (server/model_input/reference_stats.h).
using LayerReference = model_input::LayerSamples;
inline constexpr int kReferenceBins = model_input::kReferenceBins;

// model_input::ToJson(ReferenceStatsFromSamples(layers, bins)): the "reference_stats" JSON.
nlohmann::json ReferenceStatsJson(const std::vector<LayerReference>& layers,
                                  int bins = kReferenceBins);

}  // namespace segserve::training
