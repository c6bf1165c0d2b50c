// File: server/model_input/reference_stats.h — the typed reference-statistics record stored
// with a trained model ("reference_stats" in the checkpoint metadata): per tapped layer and
// channel, statistics of the per-image spatial channel means over the training images, with
// a histogram on [min, max]. Training builds it (FromSamples), drift monitoring reads it
// (FromJson); this file is the one definition of the schema:
//   {"bins": B, "images": N, "layers": [{"name", "channels", "mean": [C], "std": [C],
//    "min": [C], "max": [C], "hist": [[B counts] per channel]}]}
// std is the population standard deviation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace segserve::model_input {

inline constexpr int kReferenceBins = 32;

struct LayerReferenceStats {
  std::string name;
  int channels = 0;
  std::vector<float> mean, std, min, max;  // one per channel
  std::vector<std::vector<double>> hist;   // channels x bins counts
};

struct ReferenceStats {
  int bins = kReferenceBins;
  int64_t images = 0;
  std::vector<LayerReferenceStats> layers;
};

// One layer's per-image channel means, collected over a data set.
struct LayerSamples {
  std::string name;
  int channels = 0;
  std::vector<std::vector<float>> samples;  // one vector of `channels` means per image
};

// The statistics of `layers`' samples with `bins` histogram bins per channel.
ReferenceStats ReferenceStatsFromSamples(const std::vector<LayerSamples>& layers,
                                         int bins = kReferenceBins);

nlohmann::json ToJson(const ReferenceStats& stats);
// InvalidArgument naming the field (reference_stats.bins, reference_stats.layers[i].hist ...)
// for anything that does not follow the schema: bins 1..65000, at least one layer, every
// per-channel array of `channels` numbers, `channels` histograms of `bins` counts.
absl::StatusOr<ReferenceStats> ReferenceStatsFromJson(const nlohmann::json& json);

}  // namespace segserve::model_input
