// File: server/registry/postgres_model_store_blobs.cc — PostgresModelStore's blob side:
// a version's checkpoint as a verified local file (the shared file hashed in place, or the
// large object streamed into the cache), the cache's pruning and the removal of orphaned
// blob files at Open.
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/registry/model_store_internal.h"
#include "server/registry/postgres_model_store.h"

namespace segserve::registry {
namespace fs = std::filesystem;
using store_internal::RandomHex;
using store_internal::VersionLabel;

namespace {

const postgres::Statement kBlobPaths{
    "registry_blob_paths", "SELECT blob_path FROM model_versions WHERE blob_path IS NOT NULL"};

int64_t AgeSeconds(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(::time(nullptr)) - static_cast<int64_t>(st.st_mtim.tv_sec);
}

}  // namespace

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
    ASSIGN_OR_RETURN(std::string digest, common::FileSha256Hex(path));
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
  // Its own connection: a fetch of a large version (seconds) does not hold up this
  // replica's registry writes and refreshes, which use db_.
  absl::Status read = absl::OkStatus();
  if (fetch_db_ == nullptr) {
    postgres::ConnectOptions options = options_.database;
    options.application_name = "segserve-fetch";
    absl::StatusOr<std::unique_ptr<postgres::Connection>> opened =
        postgres::Connection::Open(std::move(options));
    if (opened.ok()) {
      fetch_db_ = *std::move(opened);
    } else {
      read = opened.status();
    }
  }
  if (read.ok()) read = fetch_db_->Begin();
  if (read.ok()) {
    read = fetch_db_->ReadLargeObject(row.blob_oid, [&](std::string_view chunk) -> absl::Status {
      sha.Update(chunk);
      bytes += static_cast<int64_t>(chunk.size());
      if (std::fwrite(chunk.data(), 1, chunk.size(), file) != chunk.size()) {
        return absl::ResourceExhaustedError(absl::StrCat("cannot write ", tmp));
      }
      return absl::OkStatus();
    });
    if (read.ok()) read = fetch_db_->Commit();
    if (!read.ok()) fetch_db_->Rollback();
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
