// File: server/data/dataset_internal.h — helpers shared by the native and
// nnU-Net readers (dataset.cc, nnunet.cc); not part of the library's public
// API.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/data/dataset.h"

namespace segserve::data::internal {

// `value` as an int. nlohmann's get<int>() static_casts floats (undefined behaviour out of
// range, found by the manifest fuzzer): accept only JSON integers within int's range.
// Throws nlohmann::json::type_error (the manifest parsers' error path) otherwise.
int JsonInt(const nlohmann::json &value);

// Parses a JSON file; NotFound when absent, InvalidArgument naming the file
// when malformed.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string &path);

// Image files (2-D images, or NIfTI volumes: .nii, .nii.gz) directly in
// root/subdir, keyed by stem (with `strip_suffix`, e.g. "_0000", removed from the
// stem; files without it are skipped). Values are absolute paths, confined to
// root (symlinks followed). Duplicate stems are InvalidArgument.
absl::StatusOr<std::map<std::string, std::string>> ListImageFiles(const std::string &root,
                                                                  const std::string &subdir,
                                                                  std::string_view strip_suffix);

// Resolves root/relative confined to root; InvalidArgument naming `relative` on
// escape.
absl::StatusOr<std::string> ConfinedPath(const std::string &root, const std::string &relative);

// Sorts samples and classes, resolves splits (explicit lists or ratios) and,
// for verify_contents, decodes every file. `dataset` has root, name, channels,
// classes and samples (ids and paths) filled in.
absl::Status FinishDataset(Dataset *dataset, const std::optional<SplitLists> &lists,
                           const SplitRatios &ratios, const OpenOptions &options);

// --- NIfTI data sets (nifti_dataset.cc).

// dataset.json's optional "nifti" object ({"axis": 0..2, "normalization":
// "percentile" | "zscore"}); defaults when absent. InvalidArgument naming the key.
absl::StatusOr<VolumeSlicing> ParseVolumeSlicing(const std::string &root,
                                                 const nlohmann::json &manifest);

// Whether a ListImageFiles listing holds NIfTI volumes; InvalidArgument when it
// mixes them with 2-D images.
absl::StatusOr<bool> HoldsVolumes(const std::string &root, const std::string &subdir,
                                  const std::map<std::string, std::string> &files);

// The volume `id` (image at `image_path`) with its label volume "<subdir>/<id>.nii.gz" or
// "<subdir>/<id>.nii", whichever exists under root (domain left empty); InvalidArgument
// naming the missing mask otherwise. Both layouts' readers use it.
absl::StatusOr<DatasetVolume> VolumeWithLabels(const std::string &root, const std::string &subdir,
                                               const std::string &id,
                                               const std::string &image_path);

// "<volume>_z012": the axis's letter (x, y, z) and the slice index, zero-padded to
// 3 digits (more when the volume has more slices), so ids sort in slice order.
std::string SliceId(const std::string &volume_id, int axis, int64_t slice, int64_t count);

// For a data set whose `volumes` (id, paths, domain) and `slicing` are filled in:
// checks each volume (its header and its label volume's, or with verify_contents
// both whole: integer labels, declared classes, same shape), records its
// dimensions, replaces `samples` by one per slice and creates the volume cache.
absl::Status ExpandVolumes(Dataset *dataset, const OpenOptions &options);

// LoadSample for a slice of a volume (before any shift).
absl::StatusOr<LoadedSample> LoadVolumeSlice(const Dataset &dataset, const DatasetSample &sample);

}  // namespace segserve::data::internal
