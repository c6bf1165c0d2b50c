// File: server/registry/model_store.h — the model store (ModelStore below: the interface, a
// file store and a PostgreSQL one). The file store, the single-box default, lives under
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
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "server/model/model_config.h"
#include "server/registry/model_name.h"
#include "server/postgres/connection.h"

namespace segserve::registry {


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

// Where a PostgreSQL-backed registry keeps checkpoint bytes (--blob_store).
enum class BlobBackend {
  // Files under <data_dir>/blobs/models/ (an RWX volume every replica mounts).
  kDirectory,
  // PostgreSQL large objects in the registry's own database: no extra infrastructure; a
  // version's large object is written in the transaction that inserts its row and unlinked
  // in the one that deletes it, so neither a crash nor a delete leaves an orphan.
  kLargeObject,
};
// "directory" or "large_object"; InvalidArgument naming `field` otherwise.
absl::StatusOr<BlobBackend> ParseBlobBackend(std::string_view text, std::string_view field);
std::string_view BlobBackendName(BlobBackend backend);

struct ModelStoreOptions {
  // How often a background thread picks up another process's writes (rescans the
  // directory, or polls the database's registry generation). Zero: no background thread
  // (Refresh only when called). File store: only the first Open of a directory in a
  // process decides; later Opens share its tables and thread.
  absl::Duration refresh_interval = absl::Seconds(2);
  // The registry in PostgreSQL (--database): versions, aliases and version numbering in
  // tables every replica using the database shares (postgres_model_store.h). Empty
  // conninfo: the file store under <data_dir>/models.
  postgres::ConnectOptions database;
  BlobBackend blobs = BlobBackend::kDirectory;  // with `database` only
  // Directory backend: how often the background refresh thread also removes blob files no
  // version references (older than an hour: a killed writer's), besides each Open.
  absl::Duration orphan_sweep_interval = absl::Minutes(10);
  // Test seams. Called inside AddVersion once the new version's bytes are written and
  // before it is committed (renamed into place / the transaction commits), with no lock
  // held that a reader takes.
  std::function<void(const std::string& name)> before_commit_for_testing;
  // Called after every background refresh (file store: first Open of the directory decides).
  std::function<void()> after_refresh_for_testing;
};

// The registry's durable state: model versions (checkpoint + metadata) and aliases. Two
// implementations behind this interface, which the registry, the training runner and the
// API do not tell apart: files under <data_dir>/models (FileModelStore, the single-box
// default; the comment at the top of this file) and PostgreSQL with a blob backend
// (PostgresModelStore). Both answer reads from in-memory tables and pick up other
// processes' writes on Refresh.
class ModelStore {
 public:
  // The file store (options.database.conninfo empty) or the PostgreSQL one. File store:
  // creates <data_dir>/models if missing, removes temporaries left by a crashed writer (a
  // process that is gone, or an earlier process with our pid; a live writer's are kept).
  // Both load the tables (a Refresh).
  static absl::StatusOr<std::unique_ptr<ModelStore>> Open(const std::string& data_dir,
                                                          ModelStoreOptions options = {});
  virtual ~ModelStore() = default;

  // Every complete version, sorted by name then version. File store: versions whose
  // meta.json does not parse are left out with a warning (a corrupted checkpoint is
  // detected when it is loaded). From memory.
  virtual std::vector<StoredVersion> List() const = 0;
  // NotFound when absent. version 0 = newest. From memory.
  virtual absl::StatusOr<StoredVersion> Get(const std::string& name, int64_t version) const = 0;

  // Writes `checkpoint_bytes` (a serialised model::Checkpoint) as the next version of
  // `name`. Returns the stored version. Concurrent adds, from this or another instance or
  // process, get distinct versions. ResourceExhausted naming the model when the disk is
  // full; nothing is left behind. Readers are never blocked while the bytes are written.
  virtual absl::StatusOr<StoredVersion> AddVersion(const std::string& name,
                                                   const std::string& checkpoint_bytes) = 0;

  // Aliases. From memory; SharedAliases() shares the current table without copying it.
  AliasTable Aliases() const { return *SharedAliases(); }
  virtual std::shared_ptr<const AliasTable> SharedAliases() const = 0;
  virtual absl::Status SetAlias(const std::string& alias, const AliasTarget& target) = 0;

  // Delete's `version` for every version of a name.
  static constexpr int64_t kAllVersions = -1;

  // The versions Delete(name, version) would remove (version >= 1, or kAllVersions), or
  // why it may not: NotFound (no such model or version), FailedPrecondition naming every
  // alias that points at them — an alias pinned to the version; an alias to the name's
  // newest (version 0) when `version` is the newest now (deleting it would silently move
  // the alias to an older model); any alias to the name for kAllVersions. Reads the
  // durable state (the truth across processes), not the tables.
  virtual absl::StatusOr<std::vector<StoredVersion>> PlanDelete(const std::string& name,
                                                                int64_t version) const = 0;
  // Checks as PlanDelete and removes the versions atomically with that check (no alias can
  // move onto them meanwhile), dropping them from the tables. Returns the deleted versions.
  // A deleted version number is not reused: AddVersion continues above it (after
  // kAllVersions the name starts again at 1).
  virtual absl::StatusOr<std::vector<StoredVersion>> Delete(const std::string& name,
                                                            int64_t version) = 0;

  // Replaces the tables with the durable state (another process's new versions, removed
  // versions and alias changes). I/O; never call it on the request path.
  virtual absl::Status Refresh() = 0;

  // The checkpoint of `stored` as a local file to read: the file itself for the file store
  // and the directory blob backend; for large objects a copy under
  // <data_dir>/cache/models, fetched on first use and verified against checkpoint_sha256
  // (DataLoss naming both digests when it differs, NotFound when the blob is missing).
  // Blocking I/O: call it where a model is loaded or exported, never on the request path.
  virtual absl::StatusOr<std::string> CheckpointFile(const StoredVersion& stored) = 0;

  // For the log: "files under /data/models" or "PostgreSQL <db> (large objects)".
  virtual std::string Describe() const = 0;
};

}  // namespace segserve::registry
