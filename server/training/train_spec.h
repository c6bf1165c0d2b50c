// File: server/training/train_spec.h — what a TRAIN job is asked to do (the domain mirror of
// proto segserve.v1.TrainSpec for one configuration), its JSON form (the job's spec_json) and
// its validation against the data directory. Torch-free: the api layer includes it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace segserve::data {
class DatasetIndex;
}  // namespace segserve::data

namespace segserve::training {

inline constexpr int kMaxEpochs = 10000;
inline constexpr int kMaxBatchSize = 256;
inline constexpr double kMaxLossWeight = 100.0;
inline constexpr int kMinCropSize = 32;
inline constexpr int kMaxCropSize = 2048;
inline constexpr int kMaxPatience = 10000;
inline constexpr int kMaxStepsPerEpoch = 1000000;
inline constexpr int kMaxCrossDomainSets = 32;
inline constexpr int kMaxSusceptibilityTargets = 16;
inline constexpr int kDefaultSusceptibilityImages = 64;
inline constexpr int kMaxSusceptibilityImages = 1024;

// A cross-domain test set: another data set, or the same one with a shift applied on the fly.
struct CrossDomainSpec {
  std::string label;    // result-table key; "" = derived (CrossDomainLabel)
  std::string dataset;  // name under datasets/; "" = the training data set
  std::string split;    // "train" | "val" | "test"; "" = "test"
  std::string shift;    // data::ParseShift syntax ("brightness:4"); "" = none
};

// Per-layer susceptibility of the trained model (docs/susceptibility.md), computed after the
// cross-domain sets as the Analyze RPC computes it: for each target shift, the test split with
// that shift against the unshifted test split, the first `images` images of each.
struct SusceptibilitySpec {
  std::vector<std::string> targets;  // "kind:level" (data::ParseShift, level 1..5); empty = none
  int images = kDefaultSusceptibilityImages;  // per set, 2..1024 (the null needs two)
};

struct TrainSpec {
  std::string dataset;               // required: name under <data_dir>/datasets/
  std::string encoder = "resnet34";  // "resnet18" | "resnet34"
  int prune_level = 1;               // 0..4
  int epochs = 50;                   // 1..10000
  int batch_size = 8;                // 1..256
  double learning_rate = 1e-3;       // Adam, (0, 1]
  double ce_weight = 1.0;            // 0..100
  double dice_weight = 1.0;          // 0..100 (not both 0)
  // Augmentation.
  bool flips = true;
  bool rot90 = true;
  bool random_crop = true;  // false: centre crop (when crop_size is set)
  bool color = false;
  int crop_size = 0;  // 0 = whole images; else a multiple of 32 in 32..2048
  uint64_t seed = 1;
  std::string pretrained_encoder;   // torchvision ResNet state dict, path under data_dir
  int early_stopping_patience = 0;  // epochs without val IoU improvement; 0 = off
  std::string device;               // "" = the server default; "cpu" | "cuda" | "cuda:N"
  std::string test_split = "test";
  std::vector<CrossDomainSpec> cross_domain;
  std::string model_name;  // "" = DefaultModelName(spec)
  std::vector<std::string> set_aliases;
  int max_steps_per_epoch = 0;  // 0 = the whole training split
  int priority = 0;             // scheduling only (kept so spec_json round-trips)
  // Forward-pass arithmetic: "fp32" | "bf16" (autocast) | "fp16" (autocast + loss
  // scaling, CUDA only). Master weights, loss and optimizer state are fp32 in every mode.
  std::string precision = "fp32";
  // Also evaluate the test split served in bf16: metrics "test_iou_bf16" (registry/precision.h).
  bool bf16_check = false;
  SusceptibilitySpec susceptibility;
};

// Keys as the proto's field names, nested like it ("loss": {"cross_entropy", "dice"},
// "augmentation": {"disable_flips", ..., "crop_size"}), except that encoder and prune_level
// are single values. Every field is written.
nlohmann::json TrainSpecToJson(const TrainSpec& spec);
std::string TrainSpecToJsonString(const TrainSpec& spec);
// Missing keys take the defaults above; unknown keys are ignored. InvalidArgument naming the
// field for a wrong JSON type. Does not validate ranges (ValidateTrainSpec does).
absl::StatusOr<TrainSpec> TrainSpecFromJson(const nlohmann::json& json);
absl::StatusOr<TrainSpec> TrainSpecFromJsonString(const std::string& text);

// "<dataset>-<encoder>-l<level>".
std::string DefaultModelName(const TrainSpec& spec);
// The spec's model_name, or the default.
std::string ModelNameOf(const TrainSpec& spec);
// The set's label, or: the shift ("brightness:4") for the training data set, else the data
// set's name (with "+<shift>" when shifted). The split is appended as "@split" when not test.
std::string CrossDomainLabel(const TrainSpec& spec, const CrossDomainSpec& set);

// Checks every field against its limits. InvalidArgument names the field and the limit
// ("spec.prune_level: must be 0..4, got 7"; a saturation shift on a data set or model of
// fewer than 3 channels: "spec.cross_domain[0].shift: saturation needs 3 channels; ...";
// susceptibility targets as "spec.susceptibility.targets[i]": a kind, a level 1..5, distinct,
// saturation only on colour data; "spec.susceptibility.images": 2..1024); NotFound
// for a data set that is not under <data_dir>/datasets/ or a pretrained_encoder file that does not
// exist. Paths (data set names, pretrained_encoder) must stay inside data_dir
// (common::ResolveUnderRoot).
// With `datasets` (the server's index), data sets are looked up there: their channel counts
// come from the index, and no files are fetched.
absl::Status ValidateTrainSpec(const TrainSpec& spec, const std::string& data_dir,
                               data::DatasetIndex* datasets = nullptr);

// The susceptibility part of a spec, as ValidateTrainSpec checks it: InvalidArgument naming
// "spec.susceptibility.targets[i]" (an unknown kind, a level outside 1..5, a non-canonical
// spelling, a duplicate, saturation when `channels` is known (> 0) and below 3) or
// "spec.susceptibility.images" (outside 2..1024). `dataset` names the data in messages.
absl::Status ValidateSusceptibilitySpec(const SusceptibilitySpec& spec, int channels,
                                        const std::string& dataset);

// <data_dir>/datasets/<name>, confined to data_dir; `field` names the spec field in errors.
// With `datasets` (the server's index): its LocalDir, which fetches a set whose files are in
// the database and not on this replica.
absl::StatusOr<std::string> ResolveDatasetDir(const std::string& data_dir, const std::string& name,
                                              const std::string& field,
                                              data::DatasetIndex* datasets = nullptr);
// The channel count of data set `name` from its manifest (or `datasets`' index), 0 when the
// manifest cannot be read; errors as ResolveDatasetDir's for a missing set.
absl::StatusOr<int> DatasetChannels(const std::string& data_dir, const std::string& name,
                                    const std::string& field, data::DatasetIndex* datasets);

}  // namespace segserve::training
