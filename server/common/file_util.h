// File: server/common/file_util.h — durable file writes and path confinement under a root.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace segserve::common {

// Writes `contents` to `path` durably: a temporary file in the same directory, fsync,
// rename over `path`, fsync of the directory. Readers see the old file or the new one,
// never a partial one. Creates missing parent directories. Here and in MakeDirectories and
// SyncDirectory a full disk or quota (ENOSPC, EDQUOT) is ResourceExhausted "<what> <path>: no
// space left on device", and the temporary file is removed; other errors are Internal.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// The same durable write for a file produced piece by piece (a checkpoint streamed from
// its tensors, never held whole in memory): Append to the temporary file, Commit puts it in
// place. Destroyed without a successful Commit, it removes the temporary file and `path` is
// untouched. Errors as WriteFileAtomically's.
class AtomicFileWriter {
 public:
  static absl::StatusOr<std::unique_ptr<AtomicFileWriter>> Create(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  absl::Status Append(std::string_view data);
  // fsync, rename over the target, fsync of its directory. Call at most once.
  absl::Status Commit();

 private:
  AtomicFileWriter(std::string path, std::string dir, std::string tmp, int fd);
  absl::Status Fail(absl::Status status);

  const std::string path_;
  const std::string dir_;
  const std::string tmp_;
  int fd_;
};

// fsync of a directory, so that renames and creations in it survive a power loss.
absl::Status SyncDirectory(const std::string& dir);

// syncfs of the file system holding `dir`: the data of every file written under it and the
// directory entries, in one call (far cheaper than an fsync per file for a folder of many
// small images).
absl::Status SyncFileSystem(const std::string& dir);

// Reads a whole file. NotFound when absent, Internal on other I/O errors.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Creates `path` and its parents (like mkdir -p).
absl::Status MakeDirectories(const std::string& path);

// Resolves `relative` (as given by a client) under `root` and returns the absolute path.
// Refuses absolute paths, `..` components, and anything whose resolved location
// (symlinks followed, as far as the path exists) leaves `root`. `field` names the
// request field in the error message.
absl::StatusOr<std::string> ResolveUnderRoot(const std::string& root, std::string_view relative,
                                             std::string_view field);

}  // namespace segserve::common
