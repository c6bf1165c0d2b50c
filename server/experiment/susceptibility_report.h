// File: server/experiment/susceptibility_report.h — the susceptibility part of an experiment
// report: every trained model's per-layer Hellinger distance and its null value (the TRAIN
// result's "susceptibility", computed as the Analyze RPC does), aggregated per configuration
// and target over seeds, and the RQ1 findings (which layers a shift hits) stated with their
// uncertainty. Pure, like report.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "nlohmann/json.hpp"
#include "server/experiment/experiment_spec.h"
#include "server/experiment/stats.h"

namespace segserve::experiment {

class SusceptibilityTable {
 public:
  // Adds one model's result["susceptibility"] ({target: {"layers": [{"layer", "mean",
  // "null_mean", ...}]}}, report_json.h's form): per layer the channel-mean Hellinger distance
  // and its null. Targets outside the spec's, and non-numeric values (a null without two
  // source images is JSON null), are left out.
  void Add(const ExperimentSpec& spec, const std::string& encoder, int prune_level, uint64_t seed,
           const nlohmann::json& result_susceptibility);

  // The report's "susceptibility" array in spec order (encoder, prune level, target):
  // [{"encoder", "prune_level", "target", "layers": [{"layer", "hellinger": S, "null": S,
  //   "above_null": P}]}], S = SummaryJson over seeds, P = PairedJson of Hellinger - null
  // paired by seed (the same model and source images). Layers in the models' tap order. A
  // configuration and target without any model is left out.
  nlohmann::json Entries(const ExperimentSpec& spec) const;

  // RQ1 findings, one per encoder and target ({"question": "RQ1", "encoder", "target",
  // "text"}): per prune level the layers ranked by mean Hellinger (top three and the least),
  // the paired difference of the top two with what it supports, and how many layers are above
  // their null. Empty when no target was analysed.
  nlohmann::json Findings(const ExperimentSpec& spec) const;

 private:
  struct Cell {
    std::vector<std::string> layers;  // first-seen (tap) order
    std::map<std::string, SeedValues> hellinger, null;
  };
  static std::string LevelText(int level, const Cell& cell);
  // (encoder, prune level, target)
  std::map<std::tuple<std::string, int, std::string>, Cell> cells_;
};

// One model's values for its "models" row: {target: [{"layer", "hellinger", "null"}]}.
nlohmann::json ModelSusceptibility(const nlohmann::json& result_susceptibility);

}  // namespace segserve::experiment
