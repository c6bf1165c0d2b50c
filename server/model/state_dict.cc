#include "server/model/state_dict.h"

#include <unordered_map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/model/torch_pickle.h"
#include "server/model/torch_status.h"

namespace segserve::model {
namespace {

constexpr size_t kMaxListedKeys = 10;

std::string ListKeys(const std::vector<std::string>& keys) {
  std::string text;
  for (size_t i = 0; i < keys.size() && i < kMaxListedKeys; ++i) {
    absl::StrAppend(&text, i == 0 ? "" : ", ", keys[i]);
  }
  if (keys.size() > kMaxListedKeys) {
    absl::StrAppend(&text, ", ... and ", keys.size() - kMaxListedKeys, " more");
  }
  return text;
}

std::string ShapeString(const torch::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

}  // namespace

absl::StatusOr<StateDict> ParseStateDict(const std::string& bytes) {
  return CallTorch("parsing state dict",
                   [&]() -> absl::StatusOr<StateDict> { return ParseTorchSaveTensorDict(bytes); });
}

absl::StatusOr<StateDict> ReadStateDictFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, common::ReadFile(path));
  auto parsed = ParseStateDict(bytes);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed;
}

absl::StatusOr<std::vector<char>> SerializeStateDict(const StateDict& state_dict) {
  return CallTorch("writing state dict", [&]() -> absl::StatusOr<std::vector<char>> {
    c10::Dict<std::string, torch::Tensor> dict;
    for (const auto& [key, tensor] : state_dict) {
      dict.insert(key, tensor.detach().to(torch::kCPU).contiguous());
    }
    return torch::pickle_save(dict);
  });
}

StateDict GetStateDict(torch::nn::Module& model) {
  StateDict result;
  for (const auto& p : model.named_parameters()) result.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) result.emplace_back(b.key(), b.value());
  return result;
}

absl::StatusOr<LoadReport> LoadStateDict(Unet& model, const StateDict& state_dict,
                                         const LoadOptions& options) {
  return CallTorch("loading state dict", [&]() -> absl::StatusOr<LoadReport> {
    StateDict targets = GetStateDict(*model);
    std::unordered_map<std::string, const torch::Tensor*> source;
    for (const auto& [key, tensor] : state_dict) source[key] = &tensor;
    std::unordered_map<std::string, bool> known;
    LoadReport report;
    std::vector<std::string> mismatched;
    for (const auto& [key, target] : targets) {
      known[key] = true;
      auto it = source.find(key);
      if (it == source.end()) {
        report.missing.push_back(key);
      } else if (!it->second->sizes().equals(target.sizes())) {
        mismatched.push_back(absl::StrCat(key, " (model ", ShapeString(target), ", file ",
                                          ShapeString(*it->second), ")"));
      } else {
        report.loaded.push_back(key);
      }
    }
    for (const auto& [key, tensor] : state_dict) {
      if (!known.count(key)) report.unexpected.push_back(key);
    }
    std::vector<std::string> problems;
    if (!mismatched.empty()) {
      problems.push_back(
          absl::StrCat(mismatched.size(), " mis-shaped key(s): ", ListKeys(mismatched)));
    }
    if (options.strict && !report.missing.empty()) {
      problems.push_back(
          absl::StrCat(report.missing.size(), " missing key(s): ", ListKeys(report.missing)));
    }
    if (options.strict && !report.unexpected.empty()) {
      problems.push_back(absl::StrCat(report.unexpected.size(),
                                      " unexpected key(s): ", ListKeys(report.unexpected)));
    }
    if (!problems.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "state dict does not match the ", std::string(EncoderName(model->config().encoder)), " L",
          model->config().skip_prune_level, " U-net: ", absl::StrJoin(problems, "; ")));
    }
    torch::NoGradGuard no_grad;
    for (auto& [key, target] : targets) {
      auto it = source.find(key);
      if (it != source.end()) target.copy_(*it->second);
    }
    return report;
  });
}

absl::StatusOr<LoadReport> LoadStateDictFile(Unet& model, const std::string& path,
                                             const LoadOptions& options) {
  ASSIGN_OR_RETURN(StateDict state_dict, ReadStateDictFile(path));
  auto report = LoadStateDict(model, state_dict, options);
  if (!report.ok()) {
    return absl::Status(report.status().code(),
                        absl::StrCat(path, ": ", report.status().message()));
  }
  return report;
}

StateDict TorchvisionToEncoderKeys(const StateDict& torchvision) {
  StateDict result;
  for (const auto& [key, tensor] : torchvision) {
    if (absl::StartsWith(key, "fc.")) continue;
    result.emplace_back(absl::StrCat("encoder.", key), tensor);
  }
  return result;
}

absl::StatusOr<LoadReport> LoadTorchvisionEncoderFile(Unet& model, const std::string& path) {
  ASSIGN_OR_RETURN(StateDict torchvision, ReadStateDictFile(path));
  const StateDict encoder_keys = TorchvisionToEncoderKeys(torchvision);
  std::unordered_map<std::string, bool> in_file;
  for (const auto& [key, tensor] : encoder_keys) in_file[key] = true;
  std::unordered_map<std::string, bool> in_model;
  std::vector<std::string> missing;
  constexpr size_t kPrefix = sizeof("encoder.") - 1;
  for (const auto& [key, tensor] : GetStateDict(*model)) {
    in_model[key] = true;
    if (absl::StartsWith(key, "encoder.") && !in_file.count(key)) {
      missing.push_back(key.substr(kPrefix));
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& [key, tensor] : encoder_keys) {
    if (!in_model.count(key)) unexpected.push_back(key.substr(kPrefix));
  }
  if (!missing.empty() || !unexpected.empty()) {
    std::string detail;
    if (!missing.empty()) {
      absl::StrAppend(&detail, missing.size(), " missing key(s): ", ListKeys(missing));
    }
    if (!unexpected.empty()) {
      absl::StrAppend(&detail, missing.empty() ? "" : "; ", unexpected.size(),
                      " unexpected key(s): ", ListKeys(unexpected));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a torchvision ",
                     std::string(EncoderName(model->config().encoder)), " state dict: ", detail));
  }
  LoadOptions options;
  options.strict = false;
  auto report = LoadStateDict(model, encoder_keys, options);
  if (!report.ok()) {
    return absl::Status(report.status().code(),
                        absl::StrCat(path, ": ", report.status().message()));
  }
  return report;
}

}  // namespace segserve::model
