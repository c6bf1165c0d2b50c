// File: server/common/dir_util.h — deleting directories so that a crash leaves them whole or
// gone (rename to a hidden tombstone, fsync the parent, then remove), cleaning up the
// tombstones a crash left, measuring a directory's bytes, and parsing ages such as "30d".
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace segserve::common {

// Names starting with this are tombstones: directories being deleted. Readers skip
// hidden ('.') entries, so a tombstone is never seen as a model, data set or run.
inline constexpr char kTombstonePrefix[] = ".deleted-";

// Deletes the directory `path` in two steps: renames it to
// "<parent>/.deleted-<name>-<random>" and fsyncs the parent (the commit: from here on the
// directory is gone, also after a crash), then removes the tombstone's files. NotFound when
// `path` does not exist; other rename/fsync errors are returned and leave `path` untouched
// (a failed fsync after the rename is logged: the delete is visible, maybe not durable).
// Errors removing the tombstone's files are logged, not returned: RemoveTombstones at the
// next start finishes the job. Returns the bytes removed (DirectoryBytes before the rename).
absl::StatusOr<int64_t> RemoveDirectoryDurably(const std::string& path);

// Removes every tombstone directly inside `dir` (left by a crash during
// RemoveDirectoryDurably). Returns how many were removed; a missing `dir` counts 0.
int RemoveTombstones(const std::string& dir);

// Sum of the apparent sizes of the regular files under `path` (recursively, symlinks not
// followed); 0 when `path` is missing. Files vanishing while it walks are skipped.
int64_t DirectoryBytes(const std::string& path);

// An age such as "30d", "12h", "90m", "45s" or "2w" (a bare number is seconds). Parts may be
// combined ("1d12h"). InvalidArgument naming `field` otherwise or when negative.
absl::StatusOr<std::chrono::seconds> ParseAge(std::string_view text, std::string_view field);

}  // namespace segserve::common
