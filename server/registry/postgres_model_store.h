// File: server/registry/postgres_model_store.h — the model registry in PostgreSQL
// (--database): model names, versions (config, metadata with metrics, checksum), aliases and
// version numbering in tables every replica shares (migrations/postgres/, component
// "registry", applied at Open under the migration advisory lock). The checkpoint bytes are
// in a blob backend (--blob_store):
//   - large objects in the same database: written chunk by chunk inside the transaction that
//     inserts the version's row, unlinked inside the one that deletes it. A crash or a
//     failed write rolls both back, so there is never a row without its blob or a blob
//     without its row (the tests count pg_largeobject_metadata). Read into a local cache
//     file (<data_dir>/cache/models/<name>/<version>-<sha256>.ckpt) on first use, hashed
//     while streamed and refused on a digest mismatch.
//   - a shared directory (<data_dir>/blobs/models/<name>/<random>.ckpt on an RWX volume):
//     the file is written and synced before the row's transaction, removed after the one
//     that deletes it; a crash between the two leaves an unreferenced file, which Open and
//     the background refresh (every ModelStoreOptions::orphan_sweep_interval) remove once it is an hour old (a younger
//     one may be another replica's write in flight). Read in place, hashed and compared before every load.
// In both, a version is visible only once its transaction committed: all or nothing.
//
// Reads (List, Get, Aliases) answer from in-memory tables, as the file store does; Refresh
// polls registry_generation (one row, bumped by every write's transaction) and reloads the
// tables in one REPEATABLE READ snapshot only when it moved. A background thread refreshes
// every `refresh_interval`.
//
// Concurrency across replicas: AddVersion takes the next number with an upsert on the
// name's model_names row (a row lock, held until commit); SetAlias and Delete take a
// transaction advisory lock, so a delete's alias check and its removal are atomic against
// alias moves anywhere; Delete also locks the name's row against concurrent adds.
//
// Database down: reads keep answering from the tables; writes fail with Unavailable naming
// the database ("model registry database ..."); the connection reconnects on its own.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/postgres/connection.h"
#include "server/postgres/migrations.h"
#include "server/registry/model_store.h"
#include "server/registry/model_store_internal.h"

namespace segserve::registry {

class PostgresModelStore : public ModelStore {
 public:
  static constexpr const char* kComponent = "registry";
  // An old temporary or unreferenced blob file is removed only when older than this.
  static constexpr int64_t kOrphanAgeSeconds = 3600;

  // Connects (options.database), migrates, removes orphaned blob files (directory backend)
  // and loads the tables. Errors as PostgresJobStore::Open (InvalidArgument, Unavailable,
  // FailedPrecondition for a schema newer than this binary).
  static absl::StatusOr<std::unique_ptr<ModelStore>> Open(const std::string& data_dir,
                                                          ModelStoreOptions options);
  // The embedded migrations, in version order (generated from migrations/postgres/).
  static const std::vector<postgres::Migration>& Migrations();
  ~PostgresModelStore() override;

  std::vector<StoredVersion> List() const override;
  absl::StatusOr<StoredVersion> Get(const std::string& name, int64_t version) const override;
  absl::StatusOr<StoredVersion> AddVersion(const std::string& name,
                                           const std::string& checkpoint_bytes) override;
  std::shared_ptr<const AliasTable> SharedAliases() const override;
  absl::Status SetAlias(const std::string& alias, const AliasTarget& target) override;
  absl::StatusOr<std::vector<StoredVersion>> PlanDelete(const std::string& name,
                                                        int64_t version) const override;
  absl::StatusOr<std::vector<StoredVersion>> Delete(const std::string& name,
                                                    int64_t version) override;
  absl::Status Refresh() override;
  absl::StatusOr<std::string> CheckpointFile(const StoredVersion& stored) override;
  std::string Describe() const override;

 private:
  // A version as its row describes it: the StoredVersion and where its bytes are.
  struct Row {
    StoredVersion stored;
    uint32_t blob_oid = 0;  // large object, or 0
  };
  using VersionTable = std::map<std::string, std::map<int64_t, Row>>;

  PostgresModelStore(std::string data_dir, ModelStoreOptions options,
                     std::unique_ptr<postgres::Connection> db);
  // A version's row: its StoredVersion (checkpoint_path: the cache copy for a large object,
  // else the shared file) and its large object.
  Row MakeRow(const std::string& name, int64_t version, store_internal::VersionMeta meta,
              uint32_t blob_oid, const std::string& blob_path) const;
  // Rows of model_versions from a result of the columns kVersionColumns.
  std::vector<Row> RowsOf(const postgres::Result& result) const;
  // PlanDelete inside the caller's transaction on `db` (locks taken by the caller).
  absl::StatusOr<std::vector<Row>> PlanDeleteIn(postgres::Connection& db, const std::string& name,
                                                int64_t version) const;
  // Runs `body` on the connection in a transaction; rolls back when it or the commit fails.
  absl::Status InTransaction(const std::function<absl::Status(postgres::Connection& db)>& body)
      const ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  // The blob side (postgres_model_store_blobs.cc).
  // Large objects: the version's bytes into a cache file, hashed on the way.
  absl::Status FetchLargeObject(const Row& row, const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(fetch_mu_);
  // Directory backend: removes blob files no row references, older than kOrphanAgeSeconds.
  void RemoveOrphanedBlobFiles();
  // Removes cache files of versions that are no longer in the tables.
  void PruneCache();
  void RefreshLoop();

  const std::string data_dir_;
  const std::string blob_root_;   // <data_dir>/blobs/models (directory backend)
  const std::string cache_root_;  // <data_dir>/cache/models (large objects)
  const ModelStoreOptions options_;
  const std::string description_;

  mutable absl::Mutex db_mu_;  // the connection; held across database calls only
  std::unique_ptr<postgres::Connection> db_ ABSL_GUARDED_BY(db_mu_);
  absl::Mutex refresh_mu_;  // one Refresh at a time
  absl::Mutex fetch_mu_;    // one large-object fetch at a time
  // Fetches' own connection (opened on the first fetch), so a long fetch leaves db_ free.
  std::unique_ptr<postgres::Connection> fetch_db_ ABSL_GUARDED_BY(fetch_mu_);

  // The tables. Held only for lookups and swaps, never across I/O.
  mutable absl::Mutex mu_;
  VersionTable versions_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const AliasTable> aliases_ ABSL_GUARDED_BY(mu_) = std::make_shared<AliasTable>();
  int64_t loaded_generation_ ABSL_GUARDED_BY(mu_) = -1;  // registry_generation loaded
  uint64_t local_writes_ ABSL_GUARDED_BY(mu_) = 0;       // bumped by this store's writes

  absl::Mutex stop_mu_;
  bool stop_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread refresher_;
};

}  // namespace segserve::registry
