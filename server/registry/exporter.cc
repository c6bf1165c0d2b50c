#include "server/registry/exporter.h"

#include "server/common/status_macros.h"
#include "server/model/checkpoint.h"
#include "server/model/state_dict.h"

namespace segserve::registry {

absl::StatusOr<ExportedStateDict> ExportStateDict(const StoredVersion& stored,
                                                  ExportFormat format) {
  ASSIGN_OR_RETURN(model::LoadedCheckpoint checkpoint,
                   model::LoadCheckpoint(stored.checkpoint_path));
  model::StateDict state_dict = model::GetStateDict(*checkpoint.model);
  if (format == ExportFormat::kTorchvisionEncoder) {
    constexpr std::string_view kPrefix = "encoder.";
    model::StateDict encoder;
    for (auto& [key, tensor] : state_dict) {
      if (key.rfind(kPrefix, 0) == 0) encoder.emplace_back(key.substr(kPrefix.size()), tensor);
    }
    state_dict = std::move(encoder);
  }
  ExportedStateDict exported;
  exported.tensors = static_cast<int>(state_dict.size());
  ASSIGN_OR_RETURN(exported.bytes, model::SerializeStateDict(state_dict));
  return exported;
}

}  // namespace segserve::registry
