#include "server/api/experiment_converter.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/api/train_spec_converter.h"
#include "server/data/dataset.h"
#include "server/data/dataset_index.h"
#include "server/data/shift.h"
#include "server/experiment/experiment_spec.h"
#include "server/training/train_spec.h"

namespace segserve::api {

absl::StatusOr<ExperimentSpecs> ExperimentSpecsFromProto(const v1::ExperimentSpec& proto,
                                                         const std::string& data_dir,
                                                         int max_children,
                                                         data::DatasetIndex* datasets) {
  if (proto.priority() < -100 || proto.priority() > 100) {
    return absl::InvalidArgumentError("spec.priority: must be -100..100");
  }
  experiment::ExperimentSpec spec;
  switch (proto.preset()) {
    case v1::EXPERIMENT_PRESET_UNSPECIFIED:
      break;
    case v1::EXPERIMENT_PRESET_QUICK:
      spec.preset = "quick";
      break;
    case v1::EXPERIMENT_PRESET_PAPER:
      spec.preset = "paper";
      break;
    default:
      return absl::InvalidArgumentError("spec.preset: must be QUICK or PAPER");
  }
  for (int i = 0; i < proto.encoders_size(); ++i) {
    switch (proto.encoders(i)) {
      case v1::ENCODER_RESNET18:
        spec.encoders.push_back("resnet18");
        break;
      case v1::ENCODER_RESNET34:
        spec.encoders.push_back("resnet34");
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("spec.encoders[", i, "]: must be ENCODER_RESNET18 or _RESNET34"));
    }
  }
  spec.prune_levels.assign(proto.prune_levels().begin(), proto.prune_levels().end());
  spec.seeds.assign(proto.seeds().begin(), proto.seeds().end());
  spec.shifts.assign(proto.shifts().begin(), proto.shifts().end());
  spec.shift_levels.assign(proto.shift_levels().begin(), proto.shift_levels().end());
  training::TrainSpec& t = spec.train;
  t.dataset = proto.dataset();
  if (proto.has_epochs()) t.epochs = proto.epochs();
  if (proto.batch_size() != 0) t.batch_size = proto.batch_size();
  if (proto.learning_rate() != 0) t.learning_rate = proto.learning_rate();
  if (proto.has_loss()) {
    t.ce_weight = proto.loss().cross_entropy();
    t.dice_weight = proto.loss().dice();
    if (t.ce_weight == 0 && t.dice_weight == 0) t.ce_weight = t.dice_weight = 1.0;
  }
  t.flips = !proto.augmentation().disable_flips();
  t.rot90 = !proto.augmentation().disable_rot90();
  t.random_crop = !proto.augmentation().disable_random_crop();
  t.color = proto.augmentation().color();
  t.crop_size = proto.augmentation().crop_size();
  t.pretrained_encoder = proto.pretrained_encoder();
  t.device = proto.device();
  t.max_steps_per_epoch = proto.max_steps_per_epoch();
  t.model_name = proto.model_name();
  t.priority = proto.priority();
  t.precision = PrecisionName(proto.precision());
  t.bf16_check = proto.bf16_check();
  if (proto.has_susceptibility()) {
    training::SusceptibilitySpec susceptibility;
    susceptibility.targets.assign(proto.susceptibility().targets().begin(),
                                  proto.susceptibility().targets().end());
    if (proto.susceptibility().images() != 0) {
      susceptibility.images = proto.susceptibility().images();
    }
    spec.susceptibility = std::move(susceptibility);
  }

  // The data set's channel count decides whether saturation can be one of the shifts; a
  // data set that cannot be read is reported by ValidateTrainSpec below.
  int channels = 3;
  if (absl::StatusOr<int> c =
          training::DatasetChannels(data_dir, t.dataset, "spec.dataset", datasets);
      c.ok() && *c > 0) {
    channels = *c;
  }
  if (absl::Status s = experiment::ApplyPreset(spec, proto.has_epochs(), channels); !s.ok()) {
    return s;
  }
  experiment::ApplySusceptibilityDefault(spec);
  if (absl::Status s = experiment::ValidateExperimentSpec(spec, max_children); !s.ok()) return s;
  for (size_t i = 0; i < spec.shifts.size(); ++i) {
    if (spec.shifts[i] != "saturation") continue;
    if (absl::Status s = data::CheckShiftChannels({data::ShiftKind::kSaturation, 1}, channels,
                                                  absl::StrCat("spec.shifts[", i, "]"),
                                                  absl::StrCat("data set '", t.dataset, "'"));
        !s.ok()) {
      return s;
    }
  }
  // After the shifts: a default target follows a requested shift, which is the field to name.
  if (absl::Status s =
          training::ValidateSusceptibilitySpec(*spec.susceptibility, channels, t.dataset);
      !s.ok()) {
    return s;
  }
  ExperimentSpecs out;
  for (const training::TrainSpec& child : experiment::ExpandExperiment(spec)) {
    if (absl::Status s = training::ValidateTrainSpec(child, data_dir, datasets); !s.ok()) return s;
    out.children.push_back(training::TrainSpecToJsonString(child));
  }
  out.parent = experiment::ExperimentSpecToJson(spec).dump();
  return out;
}

void ExperimentSpecToProto(const std::string& spec_json, v1::ExperimentSpec* out) {
  const nlohmann::json json = nlohmann::json::parse(spec_json, nullptr, false);
  if (json.is_discarded()) return;
  absl::StatusOr<experiment::ExperimentSpec> spec = experiment::ExperimentSpecFromJson(json);
  if (!spec.ok()) return;
  out->set_dataset(spec->train.dataset);
  out->set_preset(spec->preset == "quick"   ? v1::EXPERIMENT_PRESET_QUICK
                  : spec->preset == "paper" ? v1::EXPERIMENT_PRESET_PAPER
                                            : v1::EXPERIMENT_PRESET_UNSPECIFIED);
  for (const auto& e : spec->encoders) {
    out->add_encoders(e == "resnet18" ? v1::ENCODER_RESNET18 : v1::ENCODER_RESNET34);
  }
  for (int l : spec->prune_levels) out->add_prune_levels(l);
  for (uint64_t s : spec->seeds) out->add_seeds(s);
  for (const auto& s : spec->shifts) out->add_shifts(s);
  for (int l : spec->shift_levels) out->add_shift_levels(l);
  const training::TrainSpec& t = spec->train;
  out->set_epochs(t.epochs);
  out->set_batch_size(t.batch_size);
  out->set_learning_rate(static_cast<float>(t.learning_rate));
  out->mutable_loss()->set_cross_entropy(static_cast<float>(t.ce_weight));
  out->mutable_loss()->set_dice(static_cast<float>(t.dice_weight));
  out->mutable_augmentation()->set_disable_flips(!t.flips);
  out->mutable_augmentation()->set_disable_rot90(!t.rot90);
  out->mutable_augmentation()->set_disable_random_crop(!t.random_crop);
  out->mutable_augmentation()->set_color(t.color);
  out->mutable_augmentation()->set_crop_size(t.crop_size);
  out->set_pretrained_encoder(t.pretrained_encoder);
  out->set_device(t.device);
  out->set_max_steps_per_epoch(t.max_steps_per_epoch);
  out->set_model_name(t.model_name);
  out->set_priority(t.priority);
  out->set_precision(PrecisionFromName(t.precision));
  out->set_bf16_check(t.bf16_check);
  if (spec->susceptibility.has_value()) {
    auto* susceptibility = out->mutable_susceptibility();
    for (const auto& target : spec->susceptibility->targets) susceptibility->add_targets(target);
    susceptibility->set_images(spec->susceptibility->images);
  }
}

}  // namespace segserve::api
