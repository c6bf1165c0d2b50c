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

// Image files directly in root/subdir, keyed by stem (with `strip_suffix`, e.g.
// "_0000", removed from the stem; files without it are skipped). Values are
// absolute paths, confined to root (symlinks followed). Duplicate stems are
// InvalidArgument.
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

}  // namespace segserve::data::internal
