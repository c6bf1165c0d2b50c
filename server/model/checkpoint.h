// File: server/model/checkpoint.h — segserve's own checkpoint file: model config, weights,
// free-form metadata JSON, SHA-256 checksum. Written atomically; verified on every read.
//
// Layout (all integers little-endian; tensor bytes in the host's, i.e. little-endian, order):
//   "SEGCKPT1"                 8-byte magic
//   header_length              uint64
//   header                     header_length bytes of JSON:
//                              {"format_version": 1, "config": {...UnetConfig...},
//                               "metadata": <any JSON>, "payload_bytes": N,
//                               "tensors": [{"name", "dtype", "shape", "offset", "nbytes"}]}
//   payload                    N bytes: the raw contiguous tensors, in state-dict order
//   "sha256:" + 64 hex chars   SHA-256 of every byte before this trailer
// Round trips are bit-exact (parameters and buffers, num_batches_tracked included).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/model/model_config.h"
#include "server/model/unet.h"

namespace segserve::model {

inline constexpr std::string_view kCheckpointMagic = "SEGCKPT1";
inline constexpr int kCheckpointFormatVersion = 1;

struct CheckpointInfo {
  UnetConfig config;
  // Free-form: training spec, metrics, creation time, ... as the writer chose.
  nlohmann::json metadata;
};

struct LoadedCheckpoint {
  CheckpointInfo info;
  Unet model{nullptr};  // in eval mode, weights loaded
};

// The file's bytes. FailedPrecondition for a BN-folded model (its weights are not the
// trainable ones).
absl::StatusOr<std::string> SerializeCheckpoint(Unet& model, const nlohmann::json& metadata);
// Serialises and writes with common::WriteFileAtomically (temp file, fsync, rename).
absl::Status SaveCheckpoint(const std::string& path, Unet& model, const nlohmann::json& metadata);

// Verifies magic, checksum and tensor table, then builds the model.
// InvalidArgument: not a segserve checkpoint / unsupported version; DataLoss: truncated,
// altered (checksum mismatch) or internally inconsistent.
absl::StatusOr<LoadedCheckpoint> ParseCheckpoint(std::string_view bytes);
absl::StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& path);
// Magic, checksum, header and tensor table (every tensor's dtype, shape and bounds) checked
// without building the model or copying a tensor: what a store does before registering
// `bytes`, so a large checkpoint is held once. A table that does not match the config's
// model (a hand-made file) is caught when the version loads.
absl::StatusOr<CheckpointInfo> VerifyCheckpoint(std::string_view bytes);
// Config and metadata only (the checksum is still verified; no model is built).
absl::StatusOr<CheckpointInfo> ReadCheckpointInfo(const std::string& path);

}  // namespace segserve::model
