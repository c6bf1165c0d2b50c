#include "server/api/train_spec_converter.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/data/dataset_index.h"
#include "server/training/train_spec.h"

namespace segserve::api {
namespace {

const char* ShiftName(const v1::Shift& shift) {
  switch (shift.kind()) {
    case v1::Shift::KIND_BRIGHTNESS: return "brightness";
    case v1::Shift::KIND_CONTRAST: return "contrast";
    case v1::Shift::KIND_SATURATION: return "saturation";
    default: return nullptr;
  }
}

absl::StatusOr<std::string> EncoderName(int encoder, int index) {
  switch (encoder) {
    case v1::ENCODER_UNSPECIFIED:
    case v1::ENCODER_RESNET34: return std::string("resnet34");
    case v1::ENCODER_RESNET18: return std::string("resnet18");
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("spec.encoders[", index, "]: must be ENCODER_RESNET18 or _RESNET34"));
  }
}

training::TrainSpec BaseSpec(const v1::TrainSpec& proto) {
  training::TrainSpec spec;
  spec.dataset = proto.dataset();
  if (proto.has_epochs()) spec.epochs = proto.epochs();
  if (proto.batch_size() != 0) spec.batch_size = proto.batch_size();
  if (proto.learning_rate() != 0) spec.learning_rate = proto.learning_rate();
  if (proto.has_loss()) {
    spec.ce_weight = proto.loss().cross_entropy();
    spec.dice_weight = proto.loss().dice();
    if (spec.ce_weight == 0 && spec.dice_weight == 0) spec.ce_weight = spec.dice_weight = 1.0;
  }
  spec.flips = !proto.augmentation().disable_flips();
  spec.rot90 = !proto.augmentation().disable_rot90();
  spec.random_crop = !proto.augmentation().disable_random_crop();
  spec.color = proto.augmentation().color();
  spec.crop_size = proto.augmentation().crop_size();
  if (proto.seed() != 0) spec.seed = proto.seed();
  spec.pretrained_encoder = proto.pretrained_encoder();
  spec.early_stopping_patience = proto.early_stopping_patience();
  spec.device = proto.device();
  if (!proto.test_split().empty()) spec.test_split = proto.test_split();
  for (const auto& set : proto.cross_domain()) {
    training::CrossDomainSpec cross;
    cross.label = set.label();
    cross.dataset = set.dataset().name();
    cross.split = set.dataset().split();
    if (const char* kind = ShiftName(set.dataset().shift()); kind && set.dataset().shift().level()) {
      cross.shift = absl::StrCat(kind, ":", set.dataset().shift().level());
    }
    spec.cross_domain.push_back(cross);
  }
  spec.model_name = proto.model_name();
  spec.set_aliases.assign(proto.set_aliases().begin(), proto.set_aliases().end());
  spec.max_steps_per_epoch = proto.max_steps_per_epoch();
  spec.priority = proto.priority();
  spec.precision = PrecisionName(proto.precision());
  spec.bf16_check = proto.bf16_check();
  spec.susceptibility.targets.assign(proto.susceptibility().targets().begin(),
                                     proto.susceptibility().targets().end());
  if (proto.susceptibility().images() != 0) {
    spec.susceptibility.images = proto.susceptibility().images();
  }
  return spec;
}

}  // namespace

std::string PrecisionName(v1::Precision precision) {
  switch (precision) {
    case v1::PRECISION_UNSPECIFIED:
    case v1::PRECISION_FP32: return "fp32";
    case v1::PRECISION_BF16: return "bf16";
    case v1::PRECISION_FP16: return "fp16";
    default: return absl::StrCat(static_cast<int>(precision));
  }
}

v1::Precision PrecisionFromName(const std::string& name) {
  if (name == "bf16") return v1::PRECISION_BF16;
  if (name == "fp16") return v1::PRECISION_FP16;
  return v1::PRECISION_FP32;
}

absl::StatusOr<RunnerSpecs> TrainSpecsFromProto(const v1::TrainSpec& proto,
                                                const std::string& data_dir,
                                                data::DatasetIndex* datasets) {
  if (proto.dataset().empty()) return absl::InvalidArgumentError("spec.dataset: required");
  std::vector<std::string> encoders;
  for (int i = 0; i < proto.encoders_size(); ++i) {
    auto name = EncoderName(proto.encoders(i), i);
    if (!name.ok()) return name.status();
    encoders.push_back(*name);
  }
  if (encoders.empty()) encoders.push_back("resnet34");
  std::vector<int> levels(proto.prune_levels().begin(), proto.prune_levels().end());
  if (levels.empty()) levels.push_back(1);
  const bool sweep = encoders.size() * levels.size() > 1;
  if (sweep && !proto.set_aliases().empty()) {
    return absl::InvalidArgumentError(
        "spec.set_aliases: only for single-configuration jobs (a sweep has several models)");
  }
  if (encoders.size() * levels.size() > 20) {
    return absl::InvalidArgumentError("spec: a sweep has at most 20 configurations");
  }
  RunnerSpecs out;
  const training::TrainSpec base = BaseSpec(proto);
  for (const auto& encoder : encoders) {
    for (int level : levels) {
      training::TrainSpec spec = base;
      spec.encoder = encoder;
      spec.prune_level = level;
      if (sweep && !base.model_name.empty()) {
        spec.model_name = absl::StrCat(base.model_name, "-", encoder, "-l", level);
      }
      if (absl::Status s = training::ValidateTrainSpec(spec, data_dir, datasets); !s.ok()) return s;
      out.children.push_back(training::TrainSpecToJsonString(spec));
    }
  }
  nlohmann::json parent = training::TrainSpecToJson(base);
  parent["encoders"] = encoders;
  parent["prune_levels"] = levels;
  out.parent = parent.dump();
  return out;
}

void TrainSpecToProto(const std::string& spec_json, v1::TrainSpec* out) {
  const nlohmann::json json = nlohmann::json::parse(spec_json, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return;
  auto spec = training::TrainSpecFromJson(json);
  if (!spec.ok()) return;
  out->set_dataset(spec->dataset);
  auto add_encoder = [out](const std::string& name) {
    out->add_encoders(name == "resnet18" ? v1::ENCODER_RESNET18 : v1::ENCODER_RESNET34);
  };
  if (json.contains("encoders") && json["encoders"].is_array()) {
    for (const auto& e : json["encoders"]) {
      if (e.is_string()) add_encoder(e.get<std::string>());
    }
    for (const auto& l : json.value("prune_levels", nlohmann::json::array())) {
      if (l.is_number_integer()) out->add_prune_levels(l.get<int>());
    }
  } else {
    add_encoder(spec->encoder);
    out->add_prune_levels(spec->prune_level);
  }
  out->set_epochs(spec->epochs);
  out->set_batch_size(spec->batch_size);
  out->set_learning_rate(static_cast<float>(spec->learning_rate));
  out->mutable_loss()->set_cross_entropy(static_cast<float>(spec->ce_weight));
  out->mutable_loss()->set_dice(static_cast<float>(spec->dice_weight));
  out->mutable_augmentation()->set_disable_flips(!spec->flips);
  out->mutable_augmentation()->set_disable_rot90(!spec->rot90);
  out->mutable_augmentation()->set_disable_random_crop(!spec->random_crop);
  out->mutable_augmentation()->set_color(spec->color);
  out->mutable_augmentation()->set_crop_size(spec->crop_size);
  out->set_seed(spec->seed);
  out->set_pretrained_encoder(spec->pretrained_encoder);
  out->set_early_stopping_patience(spec->early_stopping_patience);
  out->set_device(spec->device);
  out->set_test_split(spec->test_split);
  for (const auto& set : spec->cross_domain) {
    auto* cross = out->add_cross_domain();
    cross->set_label(set.label);
    cross->mutable_dataset()->set_name(set.dataset);
    cross->mutable_dataset()->set_split(set.split);
    const auto colon = set.shift.find(':');
    if (colon != std::string::npos) {
      const std::string kind = set.shift.substr(0, colon);
      auto* shift = cross->mutable_dataset()->mutable_shift();
      shift->set_kind(kind == "brightness"   ? v1::Shift::KIND_BRIGHTNESS
                      : kind == "contrast"   ? v1::Shift::KIND_CONTRAST
                      : kind == "saturation" ? v1::Shift::KIND_SATURATION
                                             : v1::Shift::KIND_UNSPECIFIED);
      shift->set_level(std::atoi(set.shift.c_str() + colon + 1));
    }
  }
  out->set_model_name(spec->model_name);
  for (const auto& alias : spec->set_aliases) out->add_set_aliases(alias);
  out->set_max_steps_per_epoch(spec->max_steps_per_epoch);
  out->set_priority(spec->priority);
  out->set_precision(PrecisionFromName(spec->precision));
  out->set_bf16_check(spec->bf16_check);
  if (!spec->susceptibility.targets.empty()) {
    auto* susceptibility = out->mutable_susceptibility();
    for (const auto& target : spec->susceptibility.targets) susceptibility->add_targets(target);
    susceptibility->set_images(spec->susceptibility.images);
  }
}

}  // namespace segserve::api
