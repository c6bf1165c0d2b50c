// File: server/registry/model_store.h — the on-disk model store under
// <data_dir>/models/<name>/<version>/ (model.ckpt: the checksummed checkpoint; meta.json: a
// copy of its config and metadata for cheap listing). Versions are integers >= 1. A new
// version is written into a hidden temporary directory and renamed into place, so a crash
// never leaves a half-written version visible. Aliases live in models/aliases.json.
// Deleting is the mirror image: the version directory is renamed to a hidden tombstone
// (".deleted-...", parent fsynced) and then removed; Open removes leftover tombstones. So a
// crash leaves a version whole or gone. models/<name>/.highest_version remembers the
// highest version number a delete removed, so numbers are not handed out twice.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/model/model_config.h"

namespace segserve::registry {

// 1..128 characters of [A-Za-z0-9._-], not starting with '.'; InvalidArgument naming `field`.
absl::Status ValidateModelName(const std::string& name, const std::string& field);

struct StoredVersion {
  std::string name;
  int64_t version = 0;
  model::UnetConfig config;
  nlohmann::json metadata;      // training spec, metrics, source job, created time ...
  std::string checkpoint_path;  // absolute
  int64_t checkpoint_bytes = 0;
  std::string checkpoint_sha256;
  int64_t created_unix_seconds = 0;
  int64_t disk_bytes = 0;  // files of the version directory (apparent sizes)
};

struct AliasTarget {
  std::string name;
  int64_t version = 0;  // 0 = newest
};

class ModelStore {
 public:
  // Creates <data_dir>/models if missing and removes temporaries left by a crashed writer
  // (a process that is gone, or an earlier process with our pid); a live writer's are kept.
  static absl::StatusOr<std::unique_ptr<ModelStore>> Open(const std::string& data_dir);

  // Every complete version, sorted by name then version. Broken entries are skipped with
  // a warning (a corrupted checkpoint is detected when it is loaded).
  std::vector<StoredVersion> List() const;
  // NotFound when absent. version 0 = newest.
  absl::StatusOr<StoredVersion> Get(const std::string& name, int64_t version) const;

  // Writes `checkpoint_bytes` (a serialised model::Checkpoint) as the next version of
  // `name`. Returns the stored version. Concurrent adds, from this or another instance or
  // process, get distinct versions (the final rename fails on an existing version).
  // ResourceExhausted naming the model when the disk is full; nothing is left behind.
  absl::StatusOr<StoredVersion> AddVersion(const std::string& name,
                                           const std::string& checkpoint_bytes);

  // Aliases: persisted in models/aliases.json. Re-read when the file changes, so several
  // ModelStore instances (the server's, a training runner's) agree.
  std::map<std::string, AliasTarget> Aliases() const;
  absl::Status SetAlias(const std::string& alias, const AliasTarget& target);

  // Delete's `version` for every version of a name.
  static constexpr int64_t kAllVersions = -1;

  // The versions Delete(name, version) would remove (version >= 1, or kAllVersions), or
  // why it may not: NotFound (no such model or version), FailedPrecondition naming every
  // alias that points at them — an alias pinned to the version; an alias to the name's
  // newest (version 0) when `version` is the newest now (deleting it would silently move
  // the alias to an older model); any alias to the name for kAllVersions.
  absl::StatusOr<std::vector<StoredVersion>> PlanDelete(const std::string& name,
                                                        int64_t version) const;
  // Checks as PlanDelete, under the writers' lock, then removes each version's directory
  // atomically (tombstone rename + fsync, then its files). Returns the deleted versions.
  // A deleted version number is not reused: AddVersion continues above it (after
  // kAllVersions the name starts again at 1).
  absl::StatusOr<std::vector<StoredVersion>> Delete(const std::string& name, int64_t version);

  const std::string& root() const { return root_; }

 private:
  explicit ModelStore(std::string root) : root_(std::move(root)) {}
  absl::StatusOr<StoredVersion> ReadVersion(const std::string& name, int64_t version) const;
  std::vector<int64_t> Versions(const std::string& name) const;
  // The highest version a delete removed (models/<name>/.highest_version), 0 when none.
  int64_t HighestDeleted(const std::string& name) const;
  absl::StatusOr<std::vector<StoredVersion>> PlanDeleteLocked(const std::string& name,
                                                              int64_t version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Reloads aliases.json when its modification time or size changed.
  absl::Status RefreshAliasesLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string root_;
  mutable std::mutex mu_;  // serialises writers (version numbers, aliases.json).
  mutable std::map<std::string, AliasTarget> aliases_ ABSL_GUARDED_BY(mu_);
  mutable std::pair<int64_t, int64_t> aliases_stamp_ ABSL_GUARDED_BY(mu_){-1, -1};
};

}  // namespace segserve::registry
