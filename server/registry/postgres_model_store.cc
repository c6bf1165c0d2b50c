#include "server/registry/postgres_model_store.h"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/registry/model_store_internal.h"

namespace segserve::registry {
namespace fs = std::filesystem;
using json = nlohmann::json;
using postgres::Params;
using postgres::Statement;

namespace {

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
const Statement kBlobPaths{"registry_blob_paths",
                           "SELECT blob_path FROM model_versions WHERE blob_path IS NOT NULL"};

std::string RandomHex() {
  std::random_device random;
  return absl::StrCat(absl::Hex(random(), absl::kZeroPad8), absl::Hex(random(), absl::kZeroPad8));
}

int64_t AgeSeconds(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(::time(nullptr)) - static_cast<int64_t>(st.st_mtim.tv_sec);
}

// The SHA-256 (hex) of a file, read in chunks.
absl::StatusOr<std::string> FileSha256(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  common::Sha256 sha;
  std::string buffer(1 << 20, '\0');
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
    sha.Update(std::string_view(buffer.data(), n));
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return common::DigestHex(sha.Finish());
}

std::string VersionLabel(const StoredVersion& stored) {
  return absl::StrCat("model '", stored.name, "' v", stored.version);
}

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
  for (;;) {
    {
      absl::MutexLock lock(&stop_mu_);
      if (stop_mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.refresh_interval)) return;
    }
    if (absl::Status s = Refresh(); !s.ok()) LOG(WARNING) << "model registry refresh: " << s;
    if (options_.after_refresh_for_testing) options_.after_refresh_for_testing();
  }
}

std::vector<PostgresModelStore::Row> PostgresModelStore::RowsOf(
    const postgres::Result& result) const {
  std::vector<Row> rows;
  for (int i = 0; i < result.rows(); ++i) {
    Row row;
    StoredVersion& stored = row.stored;
    stored.name = result.Text(i, 0);
    stored.version = result.Int(i, 1);
    json config = json::parse(result.Text(i, 2), nullptr, /*allow_exceptions=*/false);
    absl::StatusOr<model::UnetConfig> parsed = model::UnetConfigFromJson(config);
    if (config.is_discarded() || !parsed.ok()) {
      LOG(WARNING) << "skipping " << VersionLabel(stored) << ": its config does not parse";
      continue;
    }
    stored.config = *parsed;
    stored.metadata = json::parse(result.Text(i, 3), nullptr, /*allow_exceptions=*/false);
    if (stored.metadata.is_discarded()) stored.metadata = json::object();
    stored.checkpoint_bytes = result.Int(i, 4);
    stored.checkpoint_sha256 = result.Text(i, 5);
    stored.created_unix_seconds = result.Int(i, 6);
    row.blob_oid = static_cast<uint32_t>(result.Int(i, 7));
    const std::string blob_path = result.Text(i, 8);
    stored.checkpoint_path = row.blob_oid != 0
                                 ? absl::StrCat(cache_root_, "/", stored.name, "/", stored.version,
                                                "-", stored.checkpoint_sha256, ".ckpt")
                                 : absl::StrCat(blob_root_, "/", blob_path);
    stored.disk_bytes = stored.checkpoint_bytes;
    rows.push_back(std::move(row));
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
  Row row;
  row.blob_oid = oid;
  row.stored.name = name;
  row.stored.version = version;
  row.stored.config = meta.config;
  row.stored.metadata = std::move(meta.metadata);
  row.stored.checkpoint_bytes = meta.checkpoint_bytes;
  row.stored.checkpoint_sha256 = meta.checkpoint_sha256;
  row.stored.created_unix_seconds = meta.created_unix_seconds;
  row.stored.disk_bytes = meta.checkpoint_bytes;
  row.stored.checkpoint_path = oid != 0 ? absl::StrCat(cache_root_, "/", name, "/", version, "-",
                                                       meta.checkpoint_sha256, ".ckpt")
                                        : absl::StrCat(blob_root_, "/", blob_path);
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

absl::StatusOr<std::string> PostgresModelStore::CheckpointFile(const StoredVersion& stored) {
  Row row;
  {
    absl::MutexLock lock(&mu_);
    auto by_name = versions_.find(stored.name);
    if (by_name == versions_.end() || by_name->second.count(stored.version) == 0) {
      return absl::NotFoundError(absl::StrCat(VersionLabel(stored), " is not in the registry"));
    }
    row = by_name->second.at(stored.version);
  }
  const std::string& path = row.stored.checkpoint_path;
  if (row.blob_oid == 0) {
    // The shared directory: read in place, after checking it is the registered file.
    if (!fs::exists(path)) {
      return absl::NotFoundError(
          absl::StrCat(VersionLabel(stored), ": its blob file ", path, " is missing"));
    }
    ASSIGN_OR_RETURN(std::string digest, FileSha256(path));
    if (digest != row.stored.checkpoint_sha256) {
      return absl::DataLossError(absl::StrCat(VersionLabel(stored), ": blob file ", path,
                                              " has SHA-256 ", digest, ", registered ",
                                              row.stored.checkpoint_sha256));
    }
    return path;
  }
  absl::MutexLock fetch_lock(&fetch_mu_);
  if (fs::exists(path)) return path;  // fetched and verified before
  RETURN_IF_ERROR(FetchLargeObject(row, path));
  return path;
}

absl::Status PostgresModelStore::FetchLargeObject(const Row& row, const std::string& path) {
  const std::string dir = fs::path(path).parent_path().string();
  RETURN_IF_ERROR(common::MakeDirectories(dir));
  const std::string tmp = absl::StrCat(path, ".tmp-", RandomHex());
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) return absl::InternalError(absl::StrCat("cannot create ", tmp));
  common::Sha256 sha;
  int64_t bytes = 0;
  absl::Status read;
  {
    absl::MutexLock db_lock(&db_mu_);
    read = InTransaction([&](postgres::Connection& db) -> absl::Status {
      return db.ReadLargeObject(row.blob_oid, [&](std::string_view chunk) -> absl::Status {
        sha.Update(chunk);
        bytes += static_cast<int64_t>(chunk.size());
        if (std::fwrite(chunk.data(), 1, chunk.size(), file) != chunk.size()) {
          return absl::ResourceExhaustedError(absl::StrCat("cannot write ", tmp));
        }
        return absl::OkStatus();
      });
    });
  }
  const bool closed = std::fclose(file) == 0;
  std::error_code ec;
  if (read.ok() && !closed) read = absl::ResourceExhaustedError(absl::StrCat("cannot write ", tmp));
  if (!read.ok()) {
    fs::remove(tmp, ec);
    if (read.code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat(VersionLabel(row.stored), ": its large object ",
                                              row.blob_oid, " is missing"));
    }
    return absl::Status(read.code(),
                        absl::StrCat("fetching ", VersionLabel(row.stored), ": ", read.message()));
  }
  const std::string digest = common::DigestHex(sha.Finish());
  if (digest != row.stored.checkpoint_sha256 || bytes != row.stored.checkpoint_bytes) {
    fs::remove(tmp, ec);
    return absl::DataLossError(absl::StrCat(VersionLabel(row.stored), ": its large object ",
                                            row.blob_oid, " has SHA-256 ", digest, " (", bytes,
                                            " bytes), registered ", row.stored.checkpoint_sha256,
                                            " (", row.stored.checkpoint_bytes, " bytes)"));
  }
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

void PostgresModelStore::PruneCache() {
  // Not while a fetch writes; the tables read after it (a fetched version is in them).
  absl::MutexLock fetch_lock(&fetch_mu_);
  std::set<std::string> keep;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, by_version] : versions_) {
      for (const auto& entry : by_version) keep.insert(entry.second.stored.checkpoint_path);
    }
  }
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(cache_root_, ec)) {
    if (!entry.is_regular_file() || keep.count(entry.path().string())) continue;
    std::error_code remove_ec;
    fs::remove(entry.path(), remove_ec);
  }
}

void PostgresModelStore::RemoveOrphanedBlobFiles() {
  std::set<std::string> referenced;
  {
    absl::MutexLock db_lock(&db_mu_);
    absl::StatusOr<postgres::Result> rows = db_->Exec(kBlobPaths);
    if (!rows.ok()) {
      LOG(WARNING) << "not removing orphaned blob files: " << rows.status();
      return;
    }
    for (int i = 0; i < rows->rows(); ++i) referenced.insert(rows->Text(i, 0));
  }
  std::error_code ec;
  int removed = 0;
  for (const auto& entry : fs::recursive_directory_iterator(blob_root_, ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string relative = fs::relative(entry.path(), blob_root_).string();
    if (referenced.count(relative) || AgeSeconds(entry.path()) < kOrphanAgeSeconds) continue;
    std::error_code remove_ec;
    if (fs::remove(entry.path(), remove_ec)) ++removed;
  }
  if (removed > 0) {
    LOG(WARNING) << "removed " << removed << " blob file(s) under " << blob_root_
                 << " that no registered version references (left by an interrupted write)";
  }
}

}  // namespace segserve::registry
