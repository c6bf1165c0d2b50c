#include "server/experiment/experiment_spec.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace segserve::experiment {
namespace {

template <typename T>
absl::Status CheckDistinct(const std::vector<T>& values, const std::string& field) {
  std::set<T> seen;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!seen.insert(values[i]).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: duplicate value ", absl::StrCat(values[i])));
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status ReadArray(const nlohmann::json& j, const char* key, std::vector<T>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array())
    return absl::InvalidArgumentError(absl::StrCat("spec.", key, ": not a list"));
  out->clear();
  for (const auto& v : *it) {
    try {
      out->push_back(v.get<T>());
    } catch (const nlohmann::json::exception&) {
      return absl::InvalidArgumentError(absl::StrCat("spec.", key, ": wrong element type"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& ShiftKinds() {
  static const std::vector<std::string> kinds = {"brightness", "contrast", "saturation"};
  return kinds;
}

absl::Status ApplyPreset(ExperimentSpec& spec, bool epochs_set, int channels) {
  if (spec.preset.empty()) return absl::OkStatus();
  const bool paper = spec.preset == "paper";
  if (!paper && spec.preset != "quick") {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.preset: must be quick or paper, got '", spec.preset, "'"));
  }
  if (spec.encoders.empty()) {
    spec.encoders = paper ? std::vector<std::string>{"resnet18", "resnet34"}
                          : std::vector<std::string>{"resnet18"};
  }
  if (spec.prune_levels.empty()) {
    spec.prune_levels = paper ? std::vector<int>{0, 1, 2, 3, 4} : std::vector<int>{0, 1};
  }
  if (spec.seeds.empty()) {
    spec.seeds = std::vector<uint64_t>{1, 2, 3};  // fewer make every interval useless
  }
  std::vector<std::string> kinds = ShiftKinds();
  if (channels < 3) kinds.erase(std::remove(kinds.begin(), kinds.end(), "saturation"), kinds.end());
  if (spec.shifts.empty() && spec.shift_levels.empty()) {
    spec.shifts = kinds;
    spec.shift_levels = {1, 2, 3, 4, 5};
  } else if (spec.shifts.empty()) {
    spec.shifts = kinds;
  } else if (spec.shift_levels.empty()) {
    spec.shift_levels = {1, 2, 3, 4, 5};
  }
  // quick: 6 trainings of 8 epochs took 14.3 minutes on 2 cores with the quick-start set
  // (240 images of 128x128; docs/PERFORMANCE.md, bench/experiment/run.sh).
  if (!epochs_set) spec.train.epochs = paper ? 50 : 8;
  return absl::OkStatus();
}

void ApplySusceptibilityDefault(ExperimentSpec& spec) {
  if (spec.susceptibility.has_value()) return;
  training::SusceptibilitySpec s;
  if (!spec.shift_levels.empty()) {
    std::vector<int> levels = spec.shift_levels;
    std::sort(levels.begin(), levels.end());
    const auto mild = std::find_if(levels.begin(), levels.end(), [](int l) { return l >= 2; });
    std::vector<int> chosen = {mild != levels.end() ? *mild : levels.back()};
    if (spec.preset == "paper" && chosen.front() != levels.back()) chosen.push_back(levels.back());
    for (const std::string& kind : spec.shifts) {
      for (int level : chosen) s.targets.push_back(absl::StrCat(kind, ":", level));
    }
  }
  spec.susceptibility = std::move(s);
}

absl::Status ValidateExperimentSpec(const ExperimentSpec& spec, int max_children) {
  if (spec.train.dataset.empty()) return absl::InvalidArgumentError("spec.dataset: required");
  if (spec.encoders.empty()) {
    return absl::InvalidArgumentError(
        "spec.encoders: at least one encoder (or a preset): the grid is empty");
  }
  for (size_t i = 0; i < spec.encoders.size(); ++i) {
    if (spec.encoders[i] != "resnet18" && spec.encoders[i] != "resnet34") {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.encoders[", i, "]: must be resnet18 or resnet34, got '", spec.encoders[i], "'"));
    }
  }
  if (absl::Status s = CheckDistinct(spec.encoders, "spec.encoders"); !s.ok()) return s;
  if (spec.prune_levels.empty()) {
    return absl::InvalidArgumentError(
        "spec.prune_levels: at least one prune level (or a preset): the grid is empty");
  }
  for (size_t i = 0; i < spec.prune_levels.size(); ++i) {
    if (spec.prune_levels[i] < 0 || spec.prune_levels[i] > 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.prune_levels[", i, "]: must be 0..4, got ", spec.prune_levels[i]));
    }
  }
  if (absl::Status s = CheckDistinct(spec.prune_levels, "spec.prune_levels"); !s.ok()) return s;
  if (spec.seeds.empty()) {
    return absl::InvalidArgumentError(
        "spec.seeds: at least one seed (or a preset); 2 or more give intervals");
  }
  if (spec.seeds.size() > static_cast<size_t>(kMaxSeeds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.seeds: at most ", kMaxSeeds, " seeds, got ", spec.seeds.size()));
  }
  if (absl::Status s = CheckDistinct(spec.seeds, "spec.seeds"); !s.ok()) return s;
  for (size_t i = 0; i < spec.shifts.size(); ++i) {
    const auto& kinds = ShiftKinds();
    if (std::find(kinds.begin(), kinds.end(), spec.shifts[i]) == kinds.end()) {
      return absl::InvalidArgumentError(absl::StrCat("spec.shifts[", i, "]: unknown shift kind '",
                                                     spec.shifts[i], "'; expected ",
                                                     absl::StrJoin(kinds, ", ")));
    }
  }
  if (absl::Status s = CheckDistinct(spec.shifts, "spec.shifts"); !s.ok()) return s;
  for (size_t i = 0; i < spec.shift_levels.size(); ++i) {
    if (spec.shift_levels[i] < 1 || spec.shift_levels[i] > 5) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.shift_levels[", i, "]: must be 1..5, got ", spec.shift_levels[i]));
    }
  }
  if (absl::Status s = CheckDistinct(spec.shift_levels, "spec.shift_levels"); !s.ok()) return s;
  if (spec.shifts.empty() != spec.shift_levels.empty()) {
    return absl::InvalidArgumentError(spec.shifts.empty()
                                          ? "spec.shifts: shift levels given but no shift kind"
                                          : "spec.shift_levels: shift kinds given but no level");
  }
  if (spec.susceptibility.has_value()) {
    if (absl::Status s =
            training::ValidateSusceptibilitySpec(*spec.susceptibility, 0, spec.train.dataset);
        !s.ok()) {
      return s;
    }
  }
  if (!spec.train.set_aliases.empty()) {
    return absl::InvalidArgumentError(
        "spec.set_aliases: not for experiments (every configuration has several models)");
  }
  const size_t grid = spec.encoders.size() * spec.prune_levels.size() * spec.seeds.size();
  const size_t limit = std::min<size_t>(kMaxExperimentChildren, std::max(0, max_children));
  if (grid > limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec: the grid is ", spec.encoders.size(), " encoders x ", spec.prune_levels.size(),
        " prune_levels x ", spec.seeds.size(), " seeds = ", grid, " trainings, more than ",
        grid > static_cast<size_t>(kMaxExperimentChildren) ? "an experiment holds ("
                                                           : "the job queue holds (",
        grid > static_cast<size_t>(kMaxExperimentChildren)
            ? absl::StrCat(kMaxExperimentChildren)
            : absl::StrCat("max_queued_jobs=", max_children),
        ")"));
  }
  return absl::OkStatus();
}

std::vector<training::TrainSpec> ExpandExperiment(const ExperimentSpec& spec) {
  std::vector<training::CrossDomainSpec> shifts;
  for (const std::string& kind : spec.shifts) {
    for (int level : spec.shift_levels) {
      training::CrossDomainSpec set;
      set.shift = absl::StrCat(kind, ":", level);
      set.label = set.shift;
      shifts.push_back(set);
    }
  }
  const std::string prefix =
      spec.train.model_name.empty() ? spec.train.dataset : spec.train.model_name;
  std::vector<training::TrainSpec> children;
  for (const std::string& encoder : spec.encoders) {
    for (int level : spec.prune_levels) {
      for (uint64_t seed : spec.seeds) {
        training::TrainSpec child = spec.train;
        child.encoder = encoder;
        child.prune_level = level;
        child.seed = seed;
        child.cross_domain = shifts;
        child.susceptibility = spec.susceptibility.value_or(training::SusceptibilitySpec{});
        child.model_name = absl::StrCat(prefix, "-", encoder, "-l", level, "-s", seed);
        children.push_back(std::move(child));
      }
    }
  }
  return children;
}

nlohmann::json ExperimentSpecToJson(const ExperimentSpec& spec) {
  nlohmann::json j = {{"preset", spec.preset},
                      {"encoders", spec.encoders},
                      {"prune_levels", spec.prune_levels},
                      {"seeds", spec.seeds},
                      {"shifts", spec.shifts},
                      {"shift_levels", spec.shift_levels},
                      {"train", training::TrainSpecToJson(spec.train)}};
  if (spec.susceptibility.has_value()) {
    j["susceptibility"] = {{"targets", spec.susceptibility->targets},
                           {"images", spec.susceptibility->images}};
  }
  return j;
}

absl::StatusOr<ExperimentSpec> ExperimentSpecFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("spec: not an object");
  ExperimentSpec spec;
  if (auto it = j.find("preset"); it != j.end() && it->is_string()) spec.preset = *it;
  if (absl::Status s = ReadArray(j, "encoders", &spec.encoders); !s.ok()) return s;
  if (absl::Status s = ReadArray(j, "prune_levels", &spec.prune_levels); !s.ok()) return s;
  if (absl::Status s = ReadArray(j, "seeds", &spec.seeds); !s.ok()) return s;
  if (absl::Status s = ReadArray(j, "shifts", &spec.shifts); !s.ok()) return s;
  if (absl::Status s = ReadArray(j, "shift_levels", &spec.shift_levels); !s.ok()) return s;
  if (auto it = j.find("susceptibility"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      return absl::InvalidArgumentError("spec.susceptibility: not an object");
    }
    training::SusceptibilitySpec s;
    if (absl::Status st = ReadArray(*it, "targets", &s.targets); !st.ok()) return st;
    if (auto images = it->find("images"); images != it->end() && images->is_number_integer()) {
      s.images = images->get<int>();
    }
    spec.susceptibility = std::move(s);
  }
  if (auto it = j.find("train"); it != j.end() && it->is_object()) {
    absl::StatusOr<training::TrainSpec> train = training::TrainSpecFromJson(*it);
    if (!train.ok()) return train.status();
    spec.train = std::move(*train);
  }
  return spec;
}

}  // namespace segserve::experiment
