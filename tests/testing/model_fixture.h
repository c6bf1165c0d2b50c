// File: tests/testing/model_fixture.h — puts small deterministic models into a data dir's
// model store, the way training or an import would, for tests that serve them.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/model/model_config.h"
#include "server/registry/model_store.h"
#include "server/registry/registry.h"

namespace segserve::testing {

// A U-net with weights drawn from `seed` (BatchNorm statistics included, so outputs vary
// across pixels), stored as the next version of `name` under <data_dir>/models.
absl::StatusOr<registry::StoredVersion> AddTestModel(const std::string& data_dir,
                                                     const std::string& name,
                                                     const model::UnetConfig& config, uint64_t seed,
                                                     const nlohmann::json& extra_metadata = {});

// The registry tests' model: ResNet18, 2 classes, skip prune level `level`.
model::UnetConfig SmallUnetConfig(int level = 1);
// Store options without the background refresh thread (a test refreshes when it wants).
registry::ModelStoreOptions NoBackgroundRefresh();

// The same, added through `store` (any backend).
absl::StatusOr<registry::StoredVersion> AddTestModel(registry::ModelStore& store,
                                                     const std::string& name,
                                                     const model::UnetConfig& config, uint64_t seed,
                                                     const nlohmann::json& extra_metadata = {});

// The same model's state dict as torch.save would write it (for Models.Import tests).
absl::StatusOr<std::string> TestModelStateDict(const model::UnetConfig& config, uint64_t seed);

// The ModelLoader seam's test double: fails loads of one chosen version with `error`,
// delegates the rest to the real checkpoint loader.
class FailingLoader : public registry::ModelLoader {
 public:
  explicit FailingLoader(int64_t failing_version,
                         absl::Status error = absl::InternalError("injected load failure"))
      : failing_version_(failing_version), error_(std::move(error)) {}
  absl::StatusOr<std::shared_ptr<model::ServableModel>> Load(
      const registry::StoredVersion& stored) override {
    if (stored.version == failing_version_) return error_;
    return real_.Load(stored);
  }

 private:
  int64_t failing_version_;
  absl::Status error_;
  registry::CheckpointModelLoader real_{registry::CheckpointModelLoader::Options{}};
};

}  // namespace segserve::testing
