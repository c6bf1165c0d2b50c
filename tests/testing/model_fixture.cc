#include "tests/testing/model_fixture.h"

#include <torch/torch.h>

#include "server/common/status_macros.h"
#include "server/model/checkpoint.h"
#include "server/model/state_dict.h"
#include "server/model/unet.h"

namespace segserve::testing {
namespace {

model::Unet MakeModel(const model::UnetConfig& config, uint64_t seed) {
  torch::manual_seed(seed);
  model::Unet unet(model::WithDefaultNormalisation(config));
  torch::NoGradGuard no_grad;
  for (auto& module : unet->modules(/*include_self=*/false)) {
    if (auto* bn = module->as<torch::nn::BatchNorm2dImpl>()) {
      bn->running_mean.uniform_(-0.2, 0.2);
      bn->running_var.uniform_(0.5, 1.5);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-0.2, 0.2);
    }
  }
  unet->eval();
  return unet;
}

}  // namespace

model::UnetConfig SmallUnetConfig(int level) {
  model::UnetConfig config;
  config.encoder = model::EncoderKind::kResNet18;
  config.skip_prune_level = level;
  config.classes = 2;
  return config;
}

registry::ModelStoreOptions NoBackgroundRefresh() {
  registry::ModelStoreOptions options;
  options.refresh_interval = absl::ZeroDuration();
  return options;
}

absl::StatusOr<registry::StoredVersion> AddTestModel(const std::string& data_dir,
                                                     const std::string& name,
                                                     const model::UnetConfig& config, uint64_t seed,
                                                     const nlohmann::json& extra_metadata) {
  ASSIGN_OR_RETURN(auto store, registry::ModelStore::Open(data_dir));
  return AddTestModel(*store, name, config, seed, extra_metadata);
}

absl::StatusOr<registry::StoredVersion> AddTestModel(registry::ModelStore& store,
                                                     const std::string& name,
                                                     const model::UnetConfig& config, uint64_t seed,
                                                     const nlohmann::json& extra_metadata) {
  model::Unet unet = MakeModel(config, seed);
  nlohmann::json metadata = {{"source", "test"}, {"seed", seed}};
  if (extra_metadata.is_object()) metadata.update(extra_metadata);
  ASSIGN_OR_RETURN(std::string bytes, model::SerializeCheckpoint(unet, metadata));
  return store.AddVersion(name, bytes);
}

absl::StatusOr<std::string> TestModelStateDict(const model::UnetConfig& config, uint64_t seed) {
  model::Unet unet = MakeModel(config, seed);
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [key, tensor] : model::GetStateDict(*unet)) dict.insert(key, tensor);
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace segserve::testing
