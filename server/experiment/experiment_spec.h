// File: server/experiment/experiment_spec.h — what an EXPERIMENT job is asked to do (the domain
// mirror of proto segserve.v1.ExperimentSpec): a grid of encoders x prune levels x seeds, each
// cell an ordinary TRAIN child whose cross-domain sets are every requested level of every
// requested shift kind; presets; validation naming the field; expansion into child specs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/training/train_spec.h"

namespace segserve::experiment {

// Trainings one experiment may hold, whatever the queue limit (a paper-sized study is 30).
inline constexpr int kMaxExperimentChildren = 500;
inline constexpr int kMaxSeeds = 100;

struct ExperimentSpec {
  std::string preset;                 // "" | "quick" | "paper" (fills fields left empty)
  std::vector<std::string> encoders;  // "resnet18" | "resnet34"
  std::vector<int> prune_levels;      // 0..4, distinct
  std::vector<uint64_t> seeds;        // distinct; one model per seed per configuration
  std::vector<std::string> shifts;    // "brightness" | "contrast" | "saturation", distinct
  std::vector<int> shift_levels;      // 1..5, distinct; every level of every shift is evaluated
  // Per-layer susceptibility of every trained model (TrainSpec::susceptibility): target shifts
  // "kind:level" of the test split and images per set. Unset until ApplySusceptibilityDefault
  // chooses (at submit); once set, an empty target list means none.
  std::optional<training::SusceptibilitySpec> susceptibility;
  // Settings shared by every child (dataset, epochs, batch size, loss, augmentation, ...);
  // encoder, prune_level, seed, cross_domain and model_name are set per child.
  training::TrainSpec train;
};

// Fills, for a named preset, the fields left empty (an explicit field always wins; `epochs_set`
// says whether train.epochs was given):
//   paper: resnet18+resnet34, L0..L4, seeds 1,2,3, all three shifts at levels 1..5, 50 epochs
//   quick: resnet18, L0+L1, seeds 1,2,3, all three shifts at levels 1..5, 8 epochs
// For a data set of fewer than 3 `channels` (MR slices) the preset's shifts are brightness
// and contrast only: saturation needs colour.
// InvalidArgument naming spec.preset for an unknown preset.
absl::Status ApplyPreset(ExperimentSpec& spec, bool epochs_set, int channels = 3);

// Chooses the susceptibility targets when the spec leaves them unset, per requested shift
// kind (none without shifts): the mildest requested level of at least 2 (else the strongest
// requested), because at the strongest levels every layer of a trained model saturates near
// Hellinger 1 and the layers no longer separate (docs/RESULTS.md); the paper preset adds the
// strongest requested level (levels 1..5: 2 and 5). A spec that sets them, even to none, is
// kept.
void ApplySusceptibilityDefault(ExperimentSpec& spec);

// The grid and shift fields (not the data directory: ValidateTrainSpec checks each child).
// InvalidArgument naming the field: no encoders / prune levels / seeds (an empty grid),
// duplicates, an unknown shift kind, a level outside 1..5, shifts without levels or levels
// without shifts, a grid over `max_children` (the job queue's limit) or kMaxExperimentChildren;
// susceptibility targets and images as training::ValidateSusceptibilitySpec names them
// ("spec.susceptibility.targets[i]", "spec.susceptibility.images"; saturation against the
// data set's channels is the caller's, as for shifts).
absl::Status ValidateExperimentSpec(const ExperimentSpec& spec, int max_children);

// One TrainSpec per (encoder, prune level, seed), in that nesting order. Each child's
// cross_domain lists "<shift>:<level>" for every shift and level (label = the shift string);
// its model is named "<model_name or dataset>-<encoder>-l<level>-s<seed>"; its susceptibility
// is the experiment's (none when unset).
std::vector<training::TrainSpec> ExpandExperiment(const ExperimentSpec& spec);

// {"preset", "encoders", "prune_levels", "seeds", "shifts", "shift_levels",
//  "susceptibility": {"targets", "images"} (absent when unset), "train": {...}}.
nlohmann::json ExperimentSpecToJson(const ExperimentSpec& spec);
absl::StatusOr<ExperimentSpec> ExperimentSpecFromJson(const nlohmann::json& json);

// "brightness", "contrast", "saturation".
const std::vector<std::string>& ShiftKinds();

}  // namespace segserve::experiment
