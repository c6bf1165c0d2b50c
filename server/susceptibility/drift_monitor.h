// File: server/susceptibility/drift_monitor.h — live domain-shift monitoring of served models:
// per model and tapped layer, a sliding window of the last N requests' per-image channel means
// compared with the model's training reference ("reference_stats" in the checkpoint metadata,
// written by server/training) by the per-channel Hellinger distance, exported as
// segserve_domain_shift_hellinger{model,layer} (mean over channels) and
// segserve_domain_shift_window_images{model}; plus a per-request shift score in [0, 1].
// Torch-free; the caller computes channel means (ChannelMeans) from the taps it already has.
//
// Cost per image: O(total channels) — bin lookup, two O(1) updates of a running
// Bhattacharyya sum per channel, one sqrt per channel (bench/susceptibility).
// Thread-safe: Observe may run concurrently for different models (one lock per model) and
// with SetReference / RemoveModel.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "server/metrics/metrics.h"
#include "server/susceptibility/analyzer.h"

namespace segserve::susceptibility {

struct DriftOptions {
  int window = 256;  // images per sliding window, 1..65535
  // The layer the per-request score is computed on (the most shift-sensitive one); the
  // first reference layer when the reference has no layer of this name.
  std::string score_layer = "encoder.stem";
};

// Observe's result for a model without a reference.
inline constexpr double kNoReference = -1.0;

class DriftMonitor {
 public:
  explicit DriftMonitor(metrics::Metrics& metrics, DriftOptions options = {});
  ~DriftMonitor();
  DriftMonitor(const DriftMonitor&) = delete;
  DriftMonitor& operator=(const DriftMonitor&) = delete;

  // Installs (or replaces, emptying the window) the reference of `model_key` (the gauge's
  // `model` label, e.g. LoadedModel::key()). `reference` is the "reference_stats" schema:
  // {"bins", "images", "layers": [{"name", "channels", "mean", "std", "min", "max",
  // "hist": [[bins counts] per channel]}]}, each channel's histogram spanning [min, max].
  // InvalidArgument naming the field when malformed.
  absl::Status SetReference(const std::string& model_key, const nlohmann::json& reference);
  // Forgets the model and removes its gauges (on unload).
  void RemoveModel(const std::string& model_key);
  bool HasReference(const std::string& model_key) const;

  // Adds image `image` of `batch` (per-layer channel means, matched to the reference by layer
  // name; layers with another channel count are skipped) to the model's windows, updates the
  // gauges and returns the request's score: the mean over the score layer's channels of
  // 1 - exp(-d / sigma), d = how far the channel mean lies outside the reference [min, max]
  // (0 inside), sigma = the reference std of that channel. 0 when every channel is within
  // the training range; tends to 1 as channels leave it by several standard deviations.
  // kNoReference when the model has none.
  double Observe(const std::string& model_key, const TapMeans& batch, int image);
  // Observe for every image of the batch, in order.
  std::vector<double> ObserveBatch(const std::string& model_key, const TapMeans& batch);

  // The current gauge values (layer, mean Hellinger over channels), reference order; empty
  // for an unknown model.
  std::vector<std::pair<std::string, double>> LayerDistances(const std::string& model_key) const;
  // Images in the model's window (min(observed, window)).
  int WindowImages(const std::string& model_key) const;

 private:
  struct ModelState;
  std::shared_ptr<ModelState> Find(const std::string& model_key) const;

  const DriftOptions options_;
  prometheus::Family<prometheus::Gauge>& hellinger_;
  prometheus::Family<prometheus::Gauge>& window_images_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<ModelState>> models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace segserve::susceptibility
