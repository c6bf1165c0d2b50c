// File: server/registry/model_store.h — the on-disk model store under
// <data_dir>/models/<name>/<version>/ (model.ckpt: the checksummed checkpoint; meta.json: a
// copy of its config and metadata for cheap listing). Versions are integers >= 1. A new
// version is written into a hidden temporary directory and renamed into place, so a crash
// never leaves a half-written version visible. Aliases live in models/aliases.json.
// Deleting is the mirror image: the version directory is renamed to a hidden tombstone
// (".deleted-...", parent fsynced) and then removed; Open removes leftover tombstones. So a
// crash leaves a version whole or gone. models/<name>/.highest_version remembers the
// highest version number a delete removed, so numbers are not handed out twice.
//
// Reads never touch the file system: the version table (every complete version with its
// metadata) and the alias table are held in memory and are what List, Get and Aliases
// answer from, so resolving a model on the request path costs a map lookup under a mutex
// that no writer holds across I/O. The tables change
//   - at once, for writes made through any ModelStore of the same directory in this
//     process (the instances of one directory share their tables: the server's store and
//     a training run's store see each other's AddVersion and SetAlias immediately);
//   - on Refresh(), which rescans the directory (new or vanished version directories, a
//     changed aliases.json), for writes made by another process. Refresh runs at Open, on
//     a background thread every `refresh_interval`, and where a caller off the request
//     path wants the newest state (ModelRegistry::Load, SetAlias of an unknown target).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
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

using AliasTable = std::map<std::string, AliasTarget>;

struct ModelStoreOptions {
  // How often a background thread rescans the directory for another process's writes.
  // Zero: no background thread (Refresh only when called). Only the first Open of a
  // directory in a process decides; later Opens share its tables and thread.
  absl::Duration refresh_interval = absl::Seconds(2);
  // Test seams. Called inside AddVersion once the new version's files are written and
  // before it is committed (renamed into place), with no lock held that a reader takes.
  std::function<void(const std::string& name)> before_commit_for_testing;
  // Called after every background refresh (first Open of the directory decides).
  std::function<void()> after_refresh_for_testing;
};

class ModelStore {
 public:
  // Creates <data_dir>/models if missing, removes temporaries left by a crashed writer
  // (a process that is gone, or an earlier process with our pid; a live writer's are
  // kept) and loads the tables (a Refresh).
  static absl::StatusOr<std::unique_ptr<ModelStore>> Open(const std::string& data_dir,
                                                          ModelStoreOptions options = {});
  ~ModelStore();

  // Every complete version, sorted by name then version. Versions whose meta.json does
  // not parse are left out with a warning (a corrupted checkpoint is detected when it is
  // loaded). From memory.
  std::vector<StoredVersion> List() const;
  // NotFound when absent. version 0 = newest. From memory.
  absl::StatusOr<StoredVersion> Get(const std::string& name, int64_t version) const;

  // Writes `checkpoint_bytes` (a serialised model::Checkpoint) as the next version of
  // `name`. Returns the stored version. Concurrent adds, from this or another instance or
  // process, get distinct versions (the final rename fails on an existing version).
  // ResourceExhausted naming the model when the disk is full; nothing is left behind.
  // Readers are never blocked while the files are written and synced.
  absl::StatusOr<StoredVersion> AddVersion(const std::string& name,
                                           const std::string& checkpoint_bytes);

  // Aliases, persisted in models/aliases.json. From memory; AliasTable() shares the
  // current table without copying it.
  AliasTable Aliases() const;
  std::shared_ptr<const AliasTable> SharedAliases() const;
  absl::Status SetAlias(const std::string& alias, const AliasTarget& target);

  // Delete's `version` for every version of a name.
  static constexpr int64_t kAllVersions = -1;

  // The versions Delete(name, version) would remove (version >= 1, or kAllVersions), or
  // why it may not: NotFound (no such model or version), FailedPrecondition naming every
  // alias that points at them — an alias pinned to the version; an alias to the name's
  // newest (version 0) when `version` is the newest now (deleting it would silently move
  // the alias to an older model); any alias to the name for kAllVersions. Reads the disk
  // (the truth across processes), not the tables.
  absl::StatusOr<std::vector<StoredVersion>> PlanDelete(const std::string& name,
                                                        int64_t version) const;
  // Checks as PlanDelete, holding this process's writer locks (versions and aliases), then
  // removes each version's directory atomically (tombstone rename + fsync, then its files)
  // and drops it from the tables. Returns the deleted versions. A deleted version number is
  // not reused: AddVersion continues above it (after kAllVersions the name starts again at 1).
  absl::StatusOr<std::vector<StoredVersion>> Delete(const std::string& name, int64_t version);

  // Rescans the directory and replaces the tables with what is on disk (another process's
  // new versions, removed versions and alias changes). File-system work; never call it on
  // the request path. A scan that overlaps a write of this process is discarded (the
  // write's own update is newer); the next refresh picks up anything it missed.
  absl::Status Refresh();

  const std::string& root() const;

 private:
  struct Shared;
  ModelStore(std::shared_ptr<Shared> shared, ModelStoreOptions options)
      : shared_(std::move(shared)), options_(std::move(options)) {}
  // PlanDelete with this process's alias writer lock held.
  absl::StatusOr<std::vector<StoredVersion>> PlanDeleteLocked(const std::string& name,
                                                              int64_t version) const;

  std::shared_ptr<Shared> shared_;
  ModelStoreOptions options_;
};

}  // namespace segserve::registry
