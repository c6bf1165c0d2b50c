#include "server/registry/postgres_model_store.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/registry/model_store_internal.h"

namespace segserve::registry {
namespace fs = std::filesystem;
using json = nlohmann::json;
using postgres::Params;
using postgres::Statement;

namespace {

using store_internal::RandomHex;
using store_internal::VersionLabel;

// SetAlias and Delete serialise on this transaction advisory lock ("segregis").
constexpr int64_t kRegistryWriteLock = 0x7365677265676973;

constexpr char kVersionColumns[] =
    "name, version, config::text, metadata::text, checkpoint_bytes, checkpoint_sha256, "
    "created_unix_seconds, COALESCE(blob_oid, 0), COALESCE(blob_path, '')";

const Statement kGeneration{"registry_generation",
                            "SELECT generation FROM registry_generation WHERE id = 1"};
const Statement kBumpGeneration{
    "registry_bump", "UPDATE registry_generation SET generation = generation + 1 WHERE id = 1"};
const Statement kNextVersion{
    "registry_next_version",
    "INSERT INTO model_names (name, highest_version) VALUES ($1, 1) ON CONFLICT (name) DO "
    "UPDATE SET highest_version = model_names.highest_version + 1 RETURNING highest_version"};
const Statement kInsertVersion{
    "registry_insert_version",
    "INSERT INTO model_versions (name, version, config, metadata, checkpoint_bytes, "
    "checkpoint_sha256, created_unix_seconds, blob_oid, blob_path) VALUES ($1, $2, $3::jsonb, "
    "$4::jsonb, $5, $6, $7, $8::oid, $9)"};
const std::string kSelectAllSql =
    absl::StrCat("SELECT ", kVersionColumns, " FROM model_versions ORDER BY name, version");
const Statement kSelectAll{"registry_select_all", kSelectAllSql.c_str()};
const std::string kSelectNameSql = absl::StrCat(
    "SELECT ", kVersionColumns, " FROM model_versions WHERE name = $1 ORDER BY version");
const Statement kSelectName{"registry_select_name", kSelectNameSql.c_str()};
const Statement kSelectAliases{"registry_select_aliases",
                               "SELECT alias, name, version FROM model_aliases ORDER BY alias"};
const Statement kUpsertAlias{
    "registry_upsert_alias",
    "INSERT INTO model_aliases (alias, name, version) VALUES ($1, $2, $3) ON CONFLICT (alias) "
    "DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version"};
const Statement kWriteLock{"registry_write_lock", "SELECT pg_advisory_xact_lock($1)"};
const Statement kLockName{"registry_lock_name",
                          "SELECT highest_version FROM model_names WHERE name = $1 FOR UPDATE"};
const Statement kDeleteVersion{"registry_delete_version",
                               "DELETE FROM model_versions WHERE name = $1 AND version = $2"};
const Statement kDeleteName{"registry_delete_name", "DELETE FROM model_names WHERE name = $1"};
// lo_unlink only when the object exists: a missing blob must not abort the delete.
const Statement kUnlink{"registry_unlink",
                        "SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = $1::oid"};

}  // namespace

absl::StatusOr<std::unique_ptr<ModelStore>> PostgresModelStore::Open(const std::string& data_dir,
                                                                     ModelStoreOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<postgres::Connection> db,
                   postgres::Connection::Open(options.database));
  RETURN_IF_ERROR(postgres::ApplyMigrations(*db, kComponent, Migrations()));
  std::unique_ptr<PostgresModelStore> store(new PostgresModelStore(
      fs::absolute(data_dir).lexically_normal().string(), std::move(options), std::move(db)));
  if (store->options_.blobs == BlobBackend::kDirectory) {
    RETURN_IF_ERROR(common::MakeDirectories(store->blob_root_));
    store->RemoveOrphanedBlobFiles();
  } else {
    RETURN_IF_ERROR(common::MakeDirectories(store->cache_root_));
  }
  RETURN_IF_ERROR(store->Refresh());
  LOG(INFO) << "model registry: " << store->Describe();
  if (store->options_.refresh_interval > absl::ZeroDuration()) {
    store->refresher_ = std::thread([raw = store.get()] { raw->RefreshLoop(); });
  }
  return std::unique_ptr<ModelStore>(std::move(store));
}

PostgresModelStore::PostgresModelStore(std::string data_dir, ModelStoreOptions options,
                                       std::unique_ptr<postgres::Connection> db)
    : data_dir_(std::move(data_dir)),
      blob_root_(data_dir_ + "/blobs/models"),
      cache_root_(data_dir_ + "/cache/models"),
      options_(std::move(options)),
      description_(absl::StrCat(db->description(), ", blobs in ",
                                options_.blobs == BlobBackend::kLargeObject
                                    ? "large objects"
                                    : absl::StrCat("files under ", data_dir_, "/blobs/models"))),
      db_(std::move(db)) {}

PostgresModelStore::~PostgresModelStore() {
  {
    absl::MutexLock lock(&stop_mu_);
    stop_ = true;
  }
  if (refresher_.joinable()) refresher_.join();
}

std::string PostgresModelStore::Describe() const { return description_; }

void PostgresModelStore::RefreshLoop() {
  absl::Time next_orphan_sweep = absl::Now() + options_.orphan_sweep_interval;
  for (;;) {
    {
      absl::MutexLock lock(&stop_mu_);
      if (stop_mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.refresh_interval)) return;
    }
    if (absl::Status s = Refresh(); !s.ok()) LOG(WARNING) << "model registry refresh: " << s;
    // A killed writer's blob file would otherwise wait for the next start of some replica.
    if (options_.blobs == BlobBackend::kDirectory && absl::Now() >= next_orphan_sweep) {
      RemoveOrphanedBlobFiles();
      next_orphan_sweep = absl::Now() + options_.orphan_sweep_interval;
    }
    if (options_.after_refresh_for_testing) options_.after_refresh_for_testing();
  }
}

PostgresModelStore::Row PostgresModelStore::MakeRow(const std::string& name, int64_t version,
                                                    store_internal::VersionMeta meta,
                                                    uint32_t blob_oid,
                                                    const std::string& blob_path) const {
  Row row;
  row.blob_oid = blob_oid;
  StoredVersion& stored = row.stored;
  stored.name = name;
  stored.version = version;
  stored.config = meta.config;
  stored.metadata = std::move(meta.metadata);
  stored.checkpoint_bytes = meta.checkpoint_bytes;
  stored.checkpoint_sha256 = std::move(meta.checkpoint_sha256);
  stored.created_unix_seconds = meta.created_unix_seconds;
  stored.disk_bytes = meta.checkpoint_bytes;
  // Large objects: the local cache copy (fetched by CheckpointFile); else the shared file.
  stored.checkpoint_path = blob_oid != 0 ? absl::StrCat(cache_root_, "/", name, "/", version, "-",
                                                        stored.checkpoint_sha256, ".ckpt")
                                         : absl::StrCat(blob_root_, "/", blob_path);
  return row;
}

std::vector<PostgresModelStore::Row> PostgresModelStore::RowsOf(
    const postgres::Result& result) const {
  std::vector<Row> rows;
  for (int i = 0; i < result.rows(); ++i) {
    const std::string name = result.Text(i, 0);
    const int64_t version = result.Int(i, 1);
    json config = json::parse(result.Text(i, 2), nullptr, /*allow_exceptions=*/false);
    absl::StatusOr<model::UnetConfig> parsed = model::UnetConfigFromJson(config);
    if (config.is_discarded() || !parsed.ok()) {
      LOG(WARNING) << "skipping model '" << name << "' v" << version
                   << ": its config does not parse";
      continue;
    }
    store_internal::VersionMeta meta;
    meta.config = *parsed;
    meta.metadata = json::parse(result.Text(i, 3), nullptr, /*allow_exceptions=*/false);
    if (meta.metadata.is_discarded()) meta.metadata = json::object();
    meta.checkpoint_bytes = result.Int(i, 4);
    meta.checkpoint_sha256 = result.Text(i, 5);
    meta.created_unix_seconds = result.Int(i, 6);
    rows.push_back(MakeRow(name, version, std::move(meta), static_cast<uint32_t>(result.Int(i, 7)),
                           result.Text(i, 8)));
  }
  return rows;
}

absl::Status PostgresModelStore::InTransaction(
    const std::function<absl::Status(postgres::Connection&)>& body) const {
  RETURN_IF_ERROR(db_->Begin());
  absl::Status status = body(*db_);
  if (status.ok()) status = db_->Commit();
  if (!status.ok()) db_->Rollback();
  return status;
}

absl::Status PostgresModelStore::Refresh() {
  absl::MutexLock refresh_lock(&refresh_mu_);
  uint64_t writes_at_start = 0;
  int64_t loaded = 0;
  {
    absl::MutexLock lock(&mu_);
    writes_at_start = local_writes_;
    loaded = loaded_generation_;
  }
  int64_t generation = 0;
  std::vector<Row> rows;
  AliasTable aliases;
  {
    absl::MutexLock db_lock(&db_mu_);
    ASSIGN_OR_RETURN(postgres::Result current, db_->Exec(kGeneration));
    if (current.rows() != 1) return absl::FailedPreconditionError("registry_generation is empty");
    if (current.Int(0, 0) == loaded) return absl::OkStatus();
    // One snapshot: the generation, the versions and the aliases agree with each other.
    RETURN_IF_ERROR(InTransaction([&](postgres::Connection& db) -> absl::Status {
      RETURN_IF_ERROR(db.ExecSql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").status());
      ASSIGN_OR_RETURN(postgres::Result g, db.Exec(kGeneration));
      generation = g.Int(0, 0);
      ASSIGN_OR_RETURN(postgres::Result versions, db.Exec(kSelectAll));
      rows = RowsOf(versions);
      ASSIGN_OR_RETURN(postgres::Result alias_rows, db.Exec(kSelectAliases));
      for (int i = 0; i < alias_rows.rows(); ++i) {
        aliases[alias_rows.Text(i, 0)] = AliasTarget{alias_rows.Text(i, 1), alias_rows.Int(i, 2)};
      }
      return absl::OkStatus();
    }));
  }
  {
    absl::MutexLock lock(&mu_);
    // A write of this store committed meanwhile and published itself: the snapshot may
    // predate it. The next refresh (the generation moved) loads both.
    if (local_writes_ != writes_at_start) return absl::OkStatus();
    VersionTable table;
    for (Row& row : rows) {
      const std::string name = row.stored.name;
      const int64_t version = row.stored.version;
      table[name][version] = std::move(row);
    }
    versions_ = std::move(table);
    aliases_ = std::make_shared<const AliasTable>(std::move(aliases));
    loaded_generation_ = generation;
  }
  if (options_.blobs == BlobBackend::kLargeObject) PruneCache();
  return absl::OkStatus();
}

std::vector<StoredVersion> PostgresModelStore::List() const {
  std::vector<StoredVersion> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, by_version] : versions_) {
    for (const auto& entry : by_version) out.push_back(entry.second.stored);
  }
  return out;
}

absl::StatusOr<StoredVersion> PostgresModelStore::Get(const std::string& name,
                                                      int64_t version) const {
  RETURN_IF_ERROR(ValidateModelName(name, "model.name"));
  absl::MutexLock lock(&mu_);
  auto it = versions_.find(name);
  if (it == versions_.end() || it->second.empty()) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
  }
  auto v = version == 0 ? std::prev(it->second.end()) : it->second.find(version);
  if (v == it->second.end()) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", version));
  }
  return v->second.stored;
}

absl::StatusOr<StoredVersion> PostgresModelStore::AddVersion(const std::string& name,
                                                             const std::string& checkpoint_bytes) {
  RETURN_IF_ERROR(ValidateModelName(name, "name"));
  ASSIGN_OR_RETURN(store_internal::VersionMeta meta,
                   store_internal::DescribeCheckpoint(checkpoint_bytes));
  std::string blob_path;  // directory backend, relative to blob_root_
  if (options_.blobs == BlobBackend::kDirectory) {
    blob_path = absl::StrCat(name, "/", RandomHex(), ".ckpt");
    absl::Status written =
        common::WriteFileAtomically(absl::StrCat(blob_root_, "/", blob_path), checkpoint_bytes);
    if (!written.ok()) {
      return absl::Status(written.code(),
                          absl::StrCat("cannot store model '", name, "': ", written.message()));
    }
  }
  int64_t version = 0;
  uint32_t oid = 0;
  absl::Status committed;
  {
    absl::MutexLock db_lock(&db_mu_);
    committed = InTransaction([&](postgres::Connection& db) -> absl::Status {
      // The bytes first, the number last: the name's row lock (which orders concurrent
      // adds of the name) is held from here to the commit only, not while a large
      // checkpoint streams in.
      if (options_.blobs == BlobBackend::kLargeObject) {
        ASSIGN_OR_RETURN(oid, db.CreateLargeObject());
        RETURN_IF_ERROR(db.WriteLargeObject(oid, checkpoint_bytes));
      }
      ASSIGN_OR_RETURN(postgres::Result next, db.Exec(kNextVersion, {name}));
      version = next.Int(0, 0);
      RETURN_IF_ERROR(
          db.Exec(kInsertVersion,
                  {name, absl::StrCat(version), model::ToJson(meta.config).dump(),
                   meta.metadata.dump(), absl::StrCat(meta.checkpoint_bytes),
                   meta.checkpoint_sha256, absl::StrCat(meta.created_unix_seconds),
                   oid != 0 ? std::optional<std::string>(absl::StrCat(oid)) : std::nullopt,
                   blob_path.empty() ? std::nullopt : std::optional<std::string>(blob_path)})
              .status());
      if (options_.before_commit_for_testing) options_.before_commit_for_testing(name);
      return db.Exec(kBumpGeneration).status();
    });
  }
  if (!committed.ok()) {
    // A lost connection during COMMIT leaves the outcome unknown: the file stays (a later
    // Open removes it if no row references it).
    if (!blob_path.empty() && committed.code() != absl::StatusCode::kUnavailable) {
      std::error_code ec;
      fs::remove(absl::StrCat(blob_root_, "/", blob_path), ec);
    }
    return absl::Status(committed.code(),
                        absl::StrCat("cannot store model '", name, "': ", committed.message()));
  }
  LOG(INFO) << "registered model " << name << " v" << version;
  Row row = MakeRow(name, version, std::move(meta), oid, blob_path);
  StoredVersion stored = row.stored;
  absl::MutexLock lock(&mu_);
  versions_[name][version] = std::move(row);
  ++local_writes_;
  return stored;
}

std::shared_ptr<const AliasTable> PostgresModelStore::SharedAliases() const {
  absl::MutexLock lock(&mu_);
  return aliases_;
}

absl::Status PostgresModelStore::SetAlias(const std::string& alias, const AliasTarget& target) {
  RETURN_IF_ERROR(ValidateModelName(alias, "alias"));
  AliasTable updated;
  {
    absl::MutexLock db_lock(&db_mu_);
    RETURN_IF_ERROR(InTransaction([&](postgres::Connection& db) -> absl::Status {
      RETURN_IF_ERROR(db.Exec(kWriteLock, {absl::StrCat(kRegistryWriteLock)}).status());
      RETURN_IF_ERROR(
          db.Exec(kUpsertAlias, {alias, target.name, absl::StrCat(target.version)}).status());
      ASSIGN_OR_RETURN(postgres::Result rows, db.Exec(kSelectAliases));
      for (int i = 0; i < rows.rows(); ++i) {
        updated[rows.Text(i, 0)] = AliasTarget{rows.Text(i, 1), rows.Int(i, 2)};
      }
      return db.Exec(kBumpGeneration).status();
    }));
  }
  absl::MutexLock lock(&mu_);
  aliases_ = std::make_shared<const AliasTable>(std::move(updated));
  ++local_writes_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PostgresModelStore::Row>> PostgresModelStore::PlanDeleteIn(
    postgres::Connection& db, const std::string& name, int64_t version) const {
  RETURN_IF_ERROR(ValidateModelName(name, "name"));
  if (version < 1 && version != kAllVersions) {
    return absl::InvalidArgumentError("version: must be >= 1 (or every version)");
  }
  ASSIGN_OR_RETURN(postgres::Result result, db.Exec(kSelectName, {name}));
  std::vector<Row> rows = RowsOf(result);
  if (rows.empty()) return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
  const int64_t newest = rows.back().stored.version;
  if (version != kAllVersions) {
    auto it = std::find_if(rows.begin(), rows.end(),
                           [&](const Row& row) { return row.stored.version == version; });
    if (it == rows.end()) {
      return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", version));
    }
    rows = {std::move(*it)};
  }
  ASSIGN_OR_RETURN(postgres::Result alias_rows, db.Exec(kSelectAliases));
  AliasTable aliases;
  for (int i = 0; i < alias_rows.rows(); ++i) {
    aliases[alias_rows.Text(i, 0)] = AliasTarget{alias_rows.Text(i, 1), alias_rows.Int(i, 2)};
  }
  RETURN_IF_ERROR(store_internal::CheckNoAliasBlocksDelete(aliases, name, version, newest));
  return rows;
}

absl::StatusOr<std::vector<StoredVersion>> PostgresModelStore::PlanDelete(const std::string& name,
                                                                          int64_t version) const {
  absl::MutexLock db_lock(&db_mu_);
  std::vector<Row> planned;
  RETURN_IF_ERROR(InTransaction([&](postgres::Connection& db) -> absl::Status {
    ASSIGN_OR_RETURN(planned, PlanDeleteIn(db, name, version));
    return absl::OkStatus();
  }));
  std::vector<StoredVersion> out;
  for (Row& row : planned) out.push_back(std::move(row.stored));
  return out;
}

absl::StatusOr<std::vector<StoredVersion>> PostgresModelStore::Delete(const std::string& name,
                                                                      int64_t version) {
  std::vector<Row> deleted;
  {
    absl::MutexLock db_lock(&db_mu_);
    RETURN_IF_ERROR(InTransaction([&](postgres::Connection& db) -> absl::Status {
      // No alias moves onto the versions and no version is added to the name meanwhile.
      RETURN_IF_ERROR(db.Exec(kWriteLock, {absl::StrCat(kRegistryWriteLock)}).status());
      RETURN_IF_ERROR(db.Exec(kLockName, {name}).status());
      ASSIGN_OR_RETURN(deleted, PlanDeleteIn(db, name, version));
      for (const Row& row : deleted) {
        RETURN_IF_ERROR(db.Exec(kDeleteVersion, {name, absl::StrCat(row.stored.version)}).status());
        if (row.blob_oid != 0) {
          RETURN_IF_ERROR(db.Exec(kUnlink, {absl::StrCat(row.blob_oid)}).status());
        }
      }
      if (version == kAllVersions) RETURN_IF_ERROR(db.Exec(kDeleteName, {name}).status());
      return db.Exec(kBumpGeneration).status();
    }));
  }
  std::vector<StoredVersion> out;
  for (Row& row : deleted) {
    // Committed: the blob file (directory backend) or cached copy goes now; a crash before
    // this leaves an unreferenced file for Open (orphans) or PruneCache to remove.
    std::error_code ec;
    fs::remove(row.stored.checkpoint_path, ec);
    LOG(INFO) << "deleted model " << name << " v" << row.stored.version << " ("
              << row.stored.checkpoint_bytes << " bytes)";
    out.push_back(std::move(row.stored));
  }
  absl::MutexLock lock(&mu_);
  auto it = versions_.find(name);
  if (it != versions_.end()) {
    for (const StoredVersion& stored : out) it->second.erase(stored.version);
    if (it->second.empty()) versions_.erase(it);
  }
  ++local_writes_;
  return out;
}

}  // namespace segserve::registry
