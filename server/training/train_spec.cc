// File: server/training/train_spec.cc — TrainSpec JSON and validation.
#include "server/training/train_spec.h"

#include <filesystem>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/data/dataset.h"
#include "server/data/dataset_index.h"
#include "server/data/shift.h"
#include "server/model/model_config.h"
#include "server/registry/model_store.h"

namespace segserve::training {
namespace {

using nlohmann::json;

// Reads `key` of `obj` into `out` when present; InvalidArgument naming `field` on a type error.
template <typename T>
absl::Status Read(const json& obj, const char* key, const std::string& field, T* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  try {
    *out = it->get<T>();
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, key, ": wrong JSON type (", it->type_name(), ")"));
  }
  return absl::OkStatus();
}

absl::Status RangeError(const std::string& field, const std::string& limit, double got) {
  return absl::InvalidArgumentError(
      absl::StrCat("spec.", field, ": must be ", limit, ", got ", got));
}

}  // namespace

json TrainSpecToJson(const TrainSpec& s) {
  json cross = json::array();
  for (const auto& c : s.cross_domain) {
    cross.push_back(
        {{"label", c.label}, {"dataset", c.dataset}, {"split", c.split}, {"shift", c.shift}});
  }
  return json{{"dataset", s.dataset},
              {"encoder", s.encoder},
              {"prune_level", s.prune_level},
              {"epochs", s.epochs},
              {"batch_size", s.batch_size},
              {"learning_rate", s.learning_rate},
              {"loss", {{"cross_entropy", s.ce_weight}, {"dice", s.dice_weight}}},
              {"augmentation",
               {{"disable_flips", !s.flips},
                {"disable_rot90", !s.rot90},
                {"disable_random_crop", !s.random_crop},
                {"color", s.color},
                {"crop_size", s.crop_size}}},
              {"seed", s.seed},
              {"pretrained_encoder", s.pretrained_encoder},
              {"early_stopping_patience", s.early_stopping_patience},
              {"device", s.device},
              {"test_split", s.test_split},
              {"cross_domain", cross},
              {"model_name", s.model_name},
              {"set_aliases", s.set_aliases},
              {"max_steps_per_epoch", s.max_steps_per_epoch},
              {"precision", s.precision},
              {"bf16_check", s.bf16_check},
              {"susceptibility",
               {{"targets", s.susceptibility.targets}, {"images", s.susceptibility.images}}},
              {"priority", s.priority}};
}

std::string TrainSpecToJsonString(const TrainSpec& spec) { return TrainSpecToJson(spec).dump(); }

absl::StatusOr<TrainSpec> TrainSpecFromJson(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("spec: must be a JSON object");
  TrainSpec s;
  const std::string f = "spec.";
  RETURN_IF_ERROR(Read(j, "dataset", f, &s.dataset));
  RETURN_IF_ERROR(Read(j, "encoder", f, &s.encoder));
  RETURN_IF_ERROR(Read(j, "prune_level", f, &s.prune_level));
  RETURN_IF_ERROR(Read(j, "epochs", f, &s.epochs));
  RETURN_IF_ERROR(Read(j, "batch_size", f, &s.batch_size));
  RETURN_IF_ERROR(Read(j, "learning_rate", f, &s.learning_rate));
  if (auto it = j.find("loss"); it != j.end() && it->is_object()) {
    RETURN_IF_ERROR(Read(*it, "cross_entropy", f + "loss.", &s.ce_weight));
    RETURN_IF_ERROR(Read(*it, "dice", f + "loss.", &s.dice_weight));
  }
  if (auto it = j.find("augmentation"); it != j.end() && it->is_object()) {
    const std::string af = f + "augmentation.";
    bool disable_flips = !s.flips, disable_rot90 = !s.rot90, disable_crop = !s.random_crop;
    RETURN_IF_ERROR(Read(*it, "disable_flips", af, &disable_flips));
    RETURN_IF_ERROR(Read(*it, "disable_rot90", af, &disable_rot90));
    RETURN_IF_ERROR(Read(*it, "disable_random_crop", af, &disable_crop));
    RETURN_IF_ERROR(Read(*it, "color", af, &s.color));
    RETURN_IF_ERROR(Read(*it, "crop_size", af, &s.crop_size));
    s.flips = !disable_flips;
    s.rot90 = !disable_rot90;
    s.random_crop = !disable_crop;
  }
  RETURN_IF_ERROR(Read(j, "seed", f, &s.seed));
  RETURN_IF_ERROR(Read(j, "pretrained_encoder", f, &s.pretrained_encoder));
  RETURN_IF_ERROR(Read(j, "early_stopping_patience", f, &s.early_stopping_patience));
  RETURN_IF_ERROR(Read(j, "device", f, &s.device));
  RETURN_IF_ERROR(Read(j, "test_split", f, &s.test_split));
  if (auto it = j.find("cross_domain"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return absl::InvalidArgumentError("spec.cross_domain: must be a list");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& c = (*it)[i];
      const std::string cf = absl::StrCat(f, "cross_domain[", i, "].");
      if (!c.is_object()) return absl::InvalidArgumentError(cf + ": must be an object");
      CrossDomainSpec set;
      RETURN_IF_ERROR(Read(c, "label", cf, &set.label));
      RETURN_IF_ERROR(Read(c, "dataset", cf, &set.dataset));
      RETURN_IF_ERROR(Read(c, "split", cf, &set.split));
      RETURN_IF_ERROR(Read(c, "shift", cf, &set.shift));
      s.cross_domain.push_back(std::move(set));
    }
  }
  RETURN_IF_ERROR(Read(j, "model_name", f, &s.model_name));
  RETURN_IF_ERROR(Read(j, "set_aliases", f, &s.set_aliases));
  RETURN_IF_ERROR(Read(j, "max_steps_per_epoch", f, &s.max_steps_per_epoch));
  RETURN_IF_ERROR(Read(j, "precision", f, &s.precision));
  RETURN_IF_ERROR(Read(j, "bf16_check", f, &s.bf16_check));
  RETURN_IF_ERROR(Read(j, "priority", f, &s.priority));
  if (auto it = j.find("susceptibility"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      return absl::InvalidArgumentError("spec.susceptibility: must be an object");
    }
    RETURN_IF_ERROR(Read(*it, "targets", f + "susceptibility.", &s.susceptibility.targets));
    RETURN_IF_ERROR(Read(*it, "images", f + "susceptibility.", &s.susceptibility.images));
  }
  return s;
}

absl::StatusOr<TrainSpec> TrainSpecFromJsonString(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("spec: not valid JSON");
  return TrainSpecFromJson(j);
}

std::string DefaultModelName(const TrainSpec& spec) {
  return absl::StrCat(spec.dataset, "-", spec.encoder, "-l", spec.prune_level);
}

std::string ModelNameOf(const TrainSpec& spec) {
  return spec.model_name.empty() ? DefaultModelName(spec) : spec.model_name;
}

std::string CrossDomainLabel(const TrainSpec& spec, const CrossDomainSpec& set) {
  if (!set.label.empty()) return set.label;
  const bool same = set.dataset.empty() || set.dataset == spec.dataset;
  const bool shifted = !set.shift.empty() && set.shift != "none";
  std::string label = same ? (shifted ? set.shift : spec.dataset)
                           : (shifted ? absl::StrCat(set.dataset, "+", set.shift) : set.dataset);
  if (!set.split.empty() && set.split != "test") absl::StrAppend(&label, "@", set.split);
  return label;
}

absl::StatusOr<std::string> ResolveDatasetDir(const std::string& data_dir, const std::string& name,
                                              const std::string& field,
                                              data::DatasetIndex* datasets) {
  if (datasets != nullptr) return datasets->LocalDir(name, field);
  if (name.empty()) return absl::InvalidArgumentError(field + ": required");
  if (name.find('/') != std::string::npos || name == "." || name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be a data set name (no '/', '.' or '..'), got '", name, "'"));
  }
  ASSIGN_OR_RETURN(std::string dir, common::ResolveUnderRoot(data_dir, "datasets/" + name, field));
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat(field, ": data set '", name, "' not found under datasets/"));
  }
  return dir;
}

absl::StatusOr<int> DatasetChannels(const std::string& data_dir, const std::string& name,
                                    const std::string& field, data::DatasetIndex* datasets) {
  if (datasets != nullptr) return datasets->Channels(name, field);
  ASSIGN_OR_RETURN(std::string dir, ResolveDatasetDir(data_dir, name, field));
  absl::StatusOr<int> channels = data::ReadDatasetChannels(dir);
  return channels.ok() ? *channels : 0;
}

namespace {

// Saturation needs colour in the evaluated data set and in the model, whose input channels
// are the training data set's. The channel counts come from the manifests (or the index); an
// unknown one (0: a manifest that cannot be read) is left to the job, which opens the data
// sets whole.
absl::Status CheckSaturation(const data::Shift& shift, const TrainSpec& s, const CrossDomainSpec& c,
                             int train_channels, int set_channels, const std::string& field) {
  if (shift.kind != data::ShiftKind::kSaturation || shift.is_identity()) return absl::OkStatus();
  const bool same = c.dataset.empty() || c.dataset == s.dataset;
  const std::string name = same ? s.dataset : c.dataset;
  if (set_channels > 0) {
    RETURN_IF_ERROR(data::CheckShiftChannels(shift, set_channels, field,
                                             absl::StrCat("data set '", name, "'")));
  }
  if (same) return absl::OkStatus();
  if (train_channels > 0) {
    RETURN_IF_ERROR(data::CheckShiftChannels(
        shift, train_channels, field,
        absl::StrCat("the model, trained on data set '", s.dataset, "',")));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSusceptibilitySpec(const SusceptibilitySpec& spec, int channels,
                                        const std::string& dataset) {
  if (spec.targets.size() > static_cast<size_t>(kMaxSusceptibilityTargets)) {
    return RangeError("susceptibility.targets",
                      absl::StrCat("at most ", kMaxSusceptibilityTargets, " targets"),
                      static_cast<double>(spec.targets.size()));
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < spec.targets.size(); ++i) {
    const std::string field = absl::StrCat("spec.susceptibility.targets[", i, "]");
    const std::string& text = spec.targets[i];
    const size_t colon = text.find(':');
    const std::string kind = text.substr(0, colon);
    if (kind != "brightness" && kind != "contrast" && kind != "saturation") {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": unknown shift kind '", kind,
                       "'; expected brightness, contrast or saturation, as in brightness:5"));
    }
    int level = -1;
    if (colon == std::string::npos || !absl::SimpleAtoi(text.substr(colon + 1), &level) ||
        level < 1 || level > data::kMaxShiftLevel) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": the level of '", text,
                                                     "' must be 1..", data::kMaxShiftLevel,
                                                     ", as in ", kind, ":5"));
    }
    // One spelling per target: it is the key of the result and the report.
    if (const std::string canonical = absl::StrCat(kind, ":", level); text != canonical) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": write '", text, "' as '", canonical, "'"));
    }
    if (!seen.insert(text).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": duplicate target '", text, "'"));
    }
    if (channels > 0) {
      ASSIGN_OR_RETURN(const data::Shift shift, data::ParseShift(text, field));
      RETURN_IF_ERROR(data::CheckShiftChannels(shift, channels, field,
                                               absl::StrCat("data set '", dataset, "'")));
    }
  }
  if (spec.images < 2 || spec.images > kMaxSusceptibilityImages) {
    return RangeError("susceptibility.images", absl::StrCat("2..", kMaxSusceptibilityImages),
                      spec.images);
  }
  return absl::OkStatus();
}

absl::Status ValidateTrainSpec(const TrainSpec& s, const std::string& data_dir,
                               data::DatasetIndex* datasets) {
  ASSIGN_OR_RETURN(const int train_channels,
                   DatasetChannels(data_dir, s.dataset, "spec.dataset", datasets));
  if (auto kind = model::ParseEncoderKind(s.encoder); !kind.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.encoder: must be resnet18 or resnet34, got '", s.encoder, "'"));
  }
  if (s.prune_level < 0 || s.prune_level > model::kMaxSkipPruneLevel) {
    return RangeError("prune_level", absl::StrCat("0..", model::kMaxSkipPruneLevel), s.prune_level);
  }
  if (s.epochs < 1 || s.epochs > kMaxEpochs) {
    return RangeError("epochs", absl::StrCat("1..", kMaxEpochs), s.epochs);
  }
  if (s.batch_size < 1 || s.batch_size > kMaxBatchSize) {
    return RangeError("batch_size", absl::StrCat("1..", kMaxBatchSize), s.batch_size);
  }
  if (!(s.learning_rate > 0.0 && s.learning_rate <= 1.0)) {
    return RangeError("learning_rate", "in (0, 1]", s.learning_rate);
  }
  if (!(s.ce_weight >= 0 && s.ce_weight <= kMaxLossWeight)) {
    return RangeError("loss.cross_entropy", "0..100", s.ce_weight);
  }
  if (!(s.dice_weight >= 0 && s.dice_weight <= kMaxLossWeight)) {
    return RangeError("loss.dice", "0..100", s.dice_weight);
  }
  if (s.ce_weight == 0 && s.dice_weight == 0) {
    return absl::InvalidArgumentError("spec.loss: cross_entropy and dice must not both be 0");
  }
  if (s.crop_size != 0 &&
      (s.crop_size < kMinCropSize || s.crop_size > kMaxCropSize || s.crop_size % 32 != 0)) {
    return RangeError("augmentation.crop_size", "0 or a multiple of 32 in 32..2048", s.crop_size);
  }
  if (s.early_stopping_patience < 0 || s.early_stopping_patience > kMaxPatience) {
    return RangeError("early_stopping_patience", absl::StrCat("0..", kMaxPatience),
                      s.early_stopping_patience);
  }
  if (s.max_steps_per_epoch < 0 || s.max_steps_per_epoch > kMaxStepsPerEpoch) {
    return RangeError("max_steps_per_epoch", absl::StrCat("0..", kMaxStepsPerEpoch),
                      s.max_steps_per_epoch);
  }
  if (!s.device.empty() && s.device != "cpu" && s.device != "cuda" &&
      s.device.rfind("cuda:", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.device: must be cpu, cuda or cuda:N, got '", s.device, "'"));
  }
  if (s.precision != "fp32" && s.precision != "bf16" && s.precision != "fp16") {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.precision: must be fp32, bf16 or fp16, got '", s.precision, "'"));
  }
  if (s.precision == "fp16" && s.device == "cpu") {
    return absl::InvalidArgumentError(
        "spec.precision: fp16 needs a CUDA device (spec.device is cpu); use bf16 on a CPU");
  }
  if (auto split = data::ParseSplit(s.test_split); !split.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.test_split: must be train, val or test, got '", s.test_split, "'"));
  }
  if (!s.pretrained_encoder.empty()) {
    ASSIGN_OR_RETURN(std::string path, common::ResolveUnderRoot(data_dir, s.pretrained_encoder,
                                                                "spec.pretrained_encoder"));
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      return absl::NotFoundError(absl::StrCat("spec.pretrained_encoder: file '",
                                              s.pretrained_encoder,
                                              "' not found under the data directory"));
    }
  }
  if (s.cross_domain.size() > static_cast<size_t>(kMaxCrossDomainSets)) {
    return RangeError("cross_domain", absl::StrCat("at most ", kMaxCrossDomainSets, " sets"),
                      static_cast<double>(s.cross_domain.size()));
  }
  std::set<std::string> labels;
  for (size_t i = 0; i < s.cross_domain.size(); ++i) {
    const CrossDomainSpec& c = s.cross_domain[i];
    const std::string f = absl::StrCat("spec.cross_domain[", i, "]");
    int set_channels = train_channels;
    if (!c.dataset.empty()) {
      ASSIGN_OR_RETURN(set_channels,
                       DatasetChannels(data_dir, c.dataset, f + ".dataset", datasets));
    }
    if (!c.split.empty()) {
      if (auto split = data::ParseSplit(c.split); !split.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(f, ".split: must be train, val or test, got '", c.split, "'"));
      }
    }
    ASSIGN_OR_RETURN(const data::Shift shift, data::ParseShift(c.shift, f + ".shift"));
    RETURN_IF_ERROR(CheckSaturation(shift, s, c, train_channels, set_channels, f + ".shift"));
    const std::string label = CrossDomainLabel(s, c);
    if (!labels.insert(label).second) {
      return absl::InvalidArgumentError(absl::StrCat(f, ".label: duplicate label '", label, "'"));
    }
  }
  // Saturation targets need colour; an unknown channel count is left to the job.
  RETURN_IF_ERROR(ValidateSusceptibilitySpec(s.susceptibility, train_channels, s.dataset));
  if (!s.model_name.empty()) {
    RETURN_IF_ERROR(registry::ValidateModelName(s.model_name, "spec.model_name"));
  } else {
    RETURN_IF_ERROR(registry::ValidateModelName(DefaultModelName(s), "spec.dataset"));
  }
  for (size_t i = 0; i < s.set_aliases.size(); ++i) {
    RETURN_IF_ERROR(
        registry::ValidateModelName(s.set_aliases[i], absl::StrCat("spec.set_aliases[", i, "]")));
  }
  return absl::OkStatus();
}

}  // namespace segserve::training
