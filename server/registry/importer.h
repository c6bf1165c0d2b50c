// File: server/registry/importer.h — imports a PyTorch state dict (segmentation_models_pytorch
// Unet, or a torchvision ResNet encoder with strict=false) as a new version in the store.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/model/model_config.h"
#include "server/registry/model_store.h"

namespace segserve::registry {

struct ImportRequest {
  std::string name;
  model::UnetConfig config;
  std::string state_dict_bytes;  // torch.save(model.state_dict(), f), or:
  std::string state_dict_path;   // a file holding those bytes (read here; not removed)
  bool strict = true;            // false: encoder-only files (torchvision) are accepted
  nlohmann::json metadata = nlohmann::json::object();
  // Optional idempotency key (ValidateImportId): kept in the version's metadata; an import
  // with a key a version of `name` already carries returns that version and adds nothing.
  std::string import_id;
};

// The metadata key an import's id is kept under.
inline constexpr char kImportIdKey[] = "import_id";

// Empty, or 8..128 characters [A-Za-z0-9_-]; InvalidArgument naming `field` otherwise.
absl::Status ValidateImportId(const std::string& id, const std::string& field);

// InvalidArgument for a bad config, name or import id (field named), a file that is not a
// state dict, or missing/unexpected/mis-shaped keys (listed). With an import_id, exactly once
// per id (add_once.h), also across replicas and concurrent retries.
absl::StatusOr<StoredVersion> ImportStateDict(ModelStore& store, const ImportRequest& request);

}  // namespace segserve::registry
