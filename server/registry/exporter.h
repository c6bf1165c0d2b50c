// File: server/registry/exporter.h — a stored version back out as a PyTorch state dict
// (torch.save format): segmentation_models_pytorch Unet keys, or the encoder alone with
// torchvision ResNet keys.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/registry/model_store.h"

namespace segserve::registry {

enum class ExportFormat {
  kSmp,                 // encoder.*, decoder.blocks.*, segmentation_head.* (every key)
  kTorchvisionEncoder,  // the encoder's keys without "encoder." (conv1, bn1, layer1..4)
};

struct ExportedStateDict {
  std::vector<char> bytes;  // torch.save(state_dict, f)
  int tensors = 0;    // entries
};

// Reads the version's checkpoint (checksum verified: DataLoss on a mismatch) and writes
// its weights in `format`. Blocking (reads the file, runs LibTorch): a worker thread.
absl::StatusOr<ExportedStateDict> ExportStateDict(const StoredVersion& stored, ExportFormat format);

}  // namespace segserve::registry
