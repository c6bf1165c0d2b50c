#include "server/registry/importer.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/file_util.h"
#include "server/registry/add_once.h"
#include "server/common/status_macros.h"
#include "server/model/checkpoint.h"
#include "server/model/state_dict.h"
#include "server/model/unet.h"

namespace segserve::registry {

absl::StatusOr<StoredVersion> ImportStateDict(ModelStore& store, const ImportRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.name, "name"));
  RETURN_IF_ERROR(model::Validate(request.config));
  RETURN_IF_ERROR(ValidateImportId(request.import_id, "import_id"));
  if (!request.import_id.empty()) {
    // A retry of an import that registered (its reply lost): that version, not another.
    ASSIGN_OR_RETURN(std::optional<StoredVersion> earlier,
                     FindVersionWith(store, request.name, kImportIdKey, request.import_id));
    if (earlier.has_value()) return *std::move(earlier);
  }
  model::StateDict state_dict;
  if (request.state_dict_path.empty()) {
    ASSIGN_OR_RETURN(state_dict, model::ParseStateDict(request.state_dict_bytes));
  } else {
    // The file's bytes live only until parsed: with the tensors and then the model, at most
    // two copies of the weights are held at once.
    ASSIGN_OR_RETURN(std::string bytes, common::ReadFile(request.state_dict_path));
    ASSIGN_OR_RETURN(state_dict, model::ParseStateDict(bytes));
  }
  const model::UnetConfig config = model::WithDefaultNormalisation(request.config);
  model::Unet unet{nullptr};
  try {
    unet = model::Unet(config);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot build the U-net: ", e.what()));
  }
  // torchvision ResNet files carry bare encoder keys: map them when asked for non-strict.
  bool torchvision = false;
  for (const auto& [key, tensor] : state_dict) {
    if (key.rfind("layer1.", 0) == 0 || key == "conv1.weight") torchvision = true;
  }
  if (torchvision && !request.strict) state_dict = model::TorchvisionToEncoderKeys(state_dict);
  model::LoadOptions options;
  options.strict = request.strict;
  ASSIGN_OR_RETURN(model::LoadReport report, model::LoadStateDict(unet, state_dict, options));
  state_dict.clear();  // copied into the model
  nlohmann::json metadata = request.metadata;
  metadata["source"] = "import";
  if (!request.import_id.empty()) metadata[kImportIdKey] = request.import_id;
  metadata["imported_keys"] = report.loaded.size();
  if (!report.missing.empty()) metadata["missing_keys"] = report.missing.size();
  metadata["created_unix_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count();
  ASSIGN_OR_RETURN(std::string bytes, model::SerializeCheckpoint(unet, metadata));
  unet = model::Unet{nullptr};  // AddVersion parses the bytes into a model of its own
  if (request.import_id.empty()) return store.AddVersion(request.name, bytes);
  ASSIGN_OR_RETURN(AddedOnce added,
                   AddVersionOnce(store, request.name, bytes, kImportIdKey, request.import_id));
  return std::move(added.version);
}

absl::Status ValidateImportId(const std::string& id, const std::string& field) {
  if (id.empty()) return absl::OkStatus();
  const bool plain = std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
  if (id.size() < 8 || id.size() > 128 || !plain) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be 8..128 characters [A-Za-z0-9_-], got ", id.size()));
  }
  return absl::OkStatus();
}

}  // namespace segserve::registry
