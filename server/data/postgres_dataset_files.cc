// PostgresDatasetIndex's file side (--blob_store=large_object): a published set's files
// stored as large objects with its row, fetched into a replica's datasets/ folder when it
// lacks them, and copies of sets deleted or replaced elsewhere removed. Split from
// postgres_dataset_index.cc.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "server/common/dir_util.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/data/postgres_dataset_index.h"
#include "server/data/upload.h"

namespace segserve::data {
namespace fs = std::filesystem;
using postgres::Statement;

namespace {

const Statement kLockName{"datasets_files_lock_name",
                          "SELECT pg_advisory_xact_lock(hashtext('segserve-datasets'), "
                          "hashtext($1))"};
const Statement kRowDigest{"datasets_files_row_digest",
                           "SELECT COALESCE(files_sha256, '') FROM datasets WHERE name = $1"};
const Statement kFileObjects{"datasets_files_objects",
                             "SELECT blob_oid FROM dataset_files WHERE dataset = $1"};
const Statement kUnlink{"datasets_files_unlink", "SELECT lo_unlink($1::oid)"};
const Statement kDeleteFiles{"datasets_files_delete",
                             "DELETE FROM dataset_files WHERE dataset = $1"};
// Its dataset_files rows go with it (ON DELETE CASCADE), after their objects were unlinked.
const Statement kDelete{"datasets_files_delete_set", "DELETE FROM datasets WHERE name = $1"};
const Statement kInsertFile{
    "datasets_files_insert",
    "INSERT INTO dataset_files (dataset, path, blob_oid, bytes, sha256) VALUES ($1, $2, $3::oid, "
    "$4, $5)"};
// Only the files of the digest asked for: a set replaced since its row was read fetches
// nothing (and is asked for again).
const Statement kSelectFiles{
    "datasets_files_select",
    "SELECT f.path, f.blob_oid, f.bytes, f.sha256 FROM dataset_files f JOIN datasets d ON "
    "d.name = f.dataset WHERE f.dataset = $1 AND d.files_sha256 = $2 ORDER BY f.path"};

struct FileInfo {
  std::string path;  // relative to the set's folder, '/'-separated
  int64_t bytes = 0;
  std::string sha256;
};

// The digest of a file list (sorted by path): what files_sha256 and the marker hold.
std::string ListDigest(const std::vector<FileInfo> &files) {
  common::Sha256 sha;
  for (const FileInfo &file : files) {
    sha.Update(absl::StrCat(file.path, "\n", file.bytes, "\n", file.sha256, "\n"));
  }
  return common::DigestHex(sha.Finish());
}

// Every regular file under `folder` but the marker, sorted, with sizes and digests.
absl::StatusOr<std::vector<FileInfo>> ListFiles(const std::string &folder) {
  std::vector<FileInfo> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(folder, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_symlink(ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat(it->path().string(), ": a symbolic link in a data set is not stored"));
    }
    if (!it->is_regular_file(ec)) continue;
    FileInfo file;
    file.path = it->path().lexically_relative(folder).generic_string();
    if (file.path == kFilesMarkerFile) continue;
    file.bytes = static_cast<int64_t>(it->file_size(ec));
    ASSIGN_OR_RETURN(file.sha256, common::FileSha256Hex(it->path().string()));
    files.push_back(std::move(file));
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", folder, ": ", ec.message()));
  std::sort(files.begin(), files.end(),
            [](const FileInfo &a, const FileInfo &b) { return a.path < b.path; });
  return files;
}

std::string RandomSuffix() {
  std::random_device random;
  return absl::StrCat(::getpid(), "-", random(), random());
}

}  // namespace

absl::Status PostgresDatasetIndex::EnsureFilesDb() {
  if (files_db_ != nullptr) return absl::OkStatus();
  postgres::ConnectOptions options;
  {
    absl::MutexLock lock(&db_mu_);
    options = db_->options();
  }
  options.application_name = "segserve-datasets";
  ASSIGN_OR_RETURN(files_db_, postgres::Connection::Open(std::move(options)));
  return absl::OkStatus();
}

absl::Status PostgresDatasetIndex::Remove(const std::string &name) {
  // The row and its large objects in one transaction: never a row naming unlinked objects,
  // never objects no row names.
  absl::MutexLock lock(&db_mu_);
  postgres::Connection &db = *db_;
  RETURN_IF_ERROR(db.Begin());
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(db.Exec(kLockName, {name}).status());
    ASSIGN_OR_RETURN(postgres::Result objects, db.Exec(kFileObjects, {name}));
    for (int r = 0; r < objects.rows(); ++r) {
      RETURN_IF_ERROR(db.Exec(kUnlink, {objects.Text(r, 0)}).status());
    }
    return db.Exec(kDelete, {name}).status();
  }();
  if (status.ok()) status = db.Commit();
  if (!status.ok()) db.Rollback();
  return status;
}

absl::Status PostgresDatasetIndex::StoreFiles(const DatasetEntry &entry) {
  const std::string folder = datasets_dir() + "/" + entry.name;
  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(std::vector<FileInfo> files, ListFiles(folder));
  const std::string digest = ListDigest(files);
  absl::MutexLock lock(&files_mu_);
  RETURN_IF_ERROR(EnsureFilesDb());
  postgres::Connection &db = *files_db_;
  bool stored = false;
  RETURN_IF_ERROR(db.Begin());
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(db.Exec(kLockName, {entry.name}).status());
    ASSIGN_OR_RETURN(postgres::Result current, db.Exec(kRowDigest, {entry.name}));
    // A retry, or a Reconcile that adopted the folder while its publisher recorded it.
    if (current.rows() > 0 && current.Text(0, 0) == digest) return absl::OkStatus();
    // Another set of this name, published through a replica that does not share this
    // folder: names are unique, the first one stays.
    if (current.rows() > 0 && !current.Text(0, 0).empty()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "name: data set '", entry.name, "' already exists (published through another replica)"));
    }
    ASSIGN_OR_RETURN(postgres::Result old, db.Exec(kFileObjects, {entry.name}));
    for (int r = 0; r < old.rows(); ++r) {
      RETURN_IF_ERROR(db.Exec(kUnlink, {old.Text(r, 0)}).status());
    }
    RETURN_IF_ERROR(db.Exec(kDeleteFiles, {entry.name}).status());
    RETURN_IF_ERROR(Upsert(db, entry, digest));
    // One file in memory at a time (an image, or a volume), written in 1 MiB calls.
    for (const FileInfo &file : files) {
      ASSIGN_OR_RETURN(std::string bytes, common::ReadFile(folder + "/" + file.path));
      if (common::Sha256Hex(bytes) != file.sha256) {
        return absl::AbortedError(absl::StrCat("data set '", entry.name, "': ", file.path,
                                               " changed while it was stored; try again"));
      }
      ASSIGN_OR_RETURN(uint32_t oid, db.CreateLargeObject());
      RETURN_IF_ERROR(db.WriteLargeObject(oid, bytes));
      RETURN_IF_ERROR(db.Exec(kInsertFile, {entry.name, file.path, absl::StrCat(oid),
                                            absl::StrCat(file.bytes), file.sha256})
                          .status());
    }
    stored = true;
    return absl::OkStatus();
  }();
  if (status.ok()) status = db.Commit();
  if (!status.ok()) {
    db.Rollback();
    if (status.code() == absl::StatusCode::kAlreadyExists && ReadFilesMarker(folder).empty()) {
      // This folder lost: it is not the indexed set, and LocalDir would replace it anyway.
      if (absl::StatusOr<int64_t> removed = common::RemoveDirectoryDurably(folder); !removed.ok()) {
        LOG(WARNING) << "data set " << entry.name
                     << ": cannot remove the losing copy: " << removed.status();
      }
    }
    return status;
  }
  RETURN_IF_ERROR(common::WriteFileAtomically(folder + "/" + kFilesMarkerFile, digest + "\n"));
  if (stored) {
    int64_t total = 0;
    for (const FileInfo &file : files) total += file.bytes;
    LOG(INFO) << "data set " << entry.name << ": stored " << files.size() << " files (" << total
              << " bytes) as large objects in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
              << " s";
  }
  return absl::OkStatus();
}

absl::Status PostgresDatasetIndex::FetchFiles(const std::string &name,
                                              const std::string &files_sha256) {
  const std::string folder = datasets_dir() + "/" + name;
  // Fetched by another caller while this one waited for files_mu_ (or by another replica
  // on a shared volume).
  if (ReadFilesMarker(folder) == files_sha256) return absl::OkStatus();
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(EnsureFilesDb());
  postgres::Connection &db = *files_db_;
  // Hidden, and named as an upload's staging, so a start removes it after a crash.
  const std::string staging =
      absl::StrCat(datasets_dir(), "/", kUploadStagingPrefix, "fetch-", name, "-", RandomSuffix());
  RETURN_IF_ERROR(common::MakeDirectories(staging));
  std::vector<FileInfo> fetched;
  int64_t total = 0;
  absl::Status status = db.Begin();
  if (status.ok()) {
    status = [&]() -> absl::Status {
      // One snapshot for the row and every object.
      RETURN_IF_ERROR(db.ExecSql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").status());
      ASSIGN_OR_RETURN(postgres::Result rows, db.Exec(kSelectFiles, {name, files_sha256}));
      if (rows.rows() == 0) {
        return absl::AbortedError(
            absl::StrCat("data set '", name, "' was deleted or replaced while it was fetched"));
      }
      for (int r = 0; r < rows.rows(); ++r) {
        FileInfo expected{rows.Text(r, 0), rows.Int(r, 2), rows.Text(r, 3)};
        ASSIGN_OR_RETURN(std::string path,
                         common::ResolveUnderRoot(staging, expected.path, "dataset_files.path"));
        RETURN_IF_ERROR(common::MakeDirectories(fs::path(path).parent_path().string()));
        std::FILE *out = std::fopen(path.c_str(), "wb");
        if (out == nullptr) return absl::InternalError(absl::StrCat("cannot create ", path));
        common::Sha256 sha;
        int64_t bytes = 0;
        absl::Status read = db.ReadLargeObject(
            static_cast<uint32_t>(rows.Int(r, 1)), [&](std::string_view chunk) -> absl::Status {
              sha.Update(chunk);
              bytes += static_cast<int64_t>(chunk.size());
              if (std::fwrite(chunk.data(), 1, chunk.size(), out) != chunk.size()) {
                return absl::ResourceExhaustedError(absl::StrCat("cannot write ", path));
              }
              return absl::OkStatus();
            });
        if (std::fclose(out) != 0 && read.ok()) {
          read = absl::ResourceExhaustedError(absl::StrCat("cannot write ", path));
        }
        RETURN_IF_ERROR(read);
        FileInfo got{expected.path, bytes, common::DigestHex(sha.Finish())};
        if (got.sha256 != expected.sha256 || got.bytes != expected.bytes) {
          return absl::DataLossError(
              absl::StrCat("data set '", name, "': ", expected.path, " has SHA-256 ", got.sha256,
                           " (", got.bytes, " bytes) in its large object, stored ", expected.sha256,
                           " (", expected.bytes, " bytes)"));
        }
        total += bytes;
        fetched.push_back(std::move(got));
      }
      return db.Commit();
    }();
    if (!status.ok()) db.Rollback();
  }
  if (status.ok() && ListDigest(fetched) != files_sha256) {
    status = absl::DataLossError(absl::StrCat(
        "data set '", name, "': its stored files do not match its digest ", files_sha256));
  }
  if (status.ok()) {
    status = common::WriteFileAtomically(staging + "/" + kFilesMarkerFile, files_sha256 + "\n");
  }
  if (status.ok()) status = common::SyncFileSystem(staging);
  std::error_code ec;
  if (status.ok() && fs::exists(fs::symlink_status(folder, ec))) {
    // An older copy (the set was replaced through another replica): a tombstone first.
    if (absl::StatusOr<int64_t> removed = common::RemoveDirectoryDurably(folder); !removed.ok()) {
      status = removed.status();
    }
  }
  if (status.ok()) {
    fs::rename(staging, folder, ec);
    if (ec) {
      // Another replica on the same volume put its copy there first.
      status = ReadFilesMarker(folder) == files_sha256
                   ? absl::OkStatus()
                   : absl::InternalError(absl::StrCat("cannot rename ", staging, " to ", folder,
                                                      ": ", ec.message()));
    }
  }
  if (status.ok()) status = common::SyncDirectory(datasets_dir());
  fs::remove_all(staging, ec);  // nothing left after the rename; all of it after an error
  if (!status.ok()) return status;
  LOG(INFO) << "data set " << name << ": fetched " << fetched.size() << " files (" << total
            << " bytes) from large objects in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << " s";
  return absl::OkStatus();
}

bool PostgresDatasetIndex::RemoveIfStale(const std::string &name, const std::string &row_sha256,
                                         bool has_row) {
  const std::string folder = datasets_dir() + "/" + name;
  const std::string marker = ReadFilesMarker(folder);
  // Unmarked: published here and not stored yet. Marked as the row says: current.
  if (marker.empty() || (has_row && marker == row_sha256)) return false;
  if (has_row && row_sha256.empty()) return false;  // the row has no files to compare with
  absl::MutexLock lock(&files_mu_);                 // not while this replica fetches or stores it
  if (ReadFilesMarker(folder) != marker) return false;
  absl::StatusOr<int64_t> removed = common::RemoveDirectoryDurably(folder);
  if (!removed.ok()) {
    LOG(WARNING) << "data set " << name
                 << ": cannot remove its outdated copy: " << removed.status();
    return false;
  }
  LOG(INFO) << "data set " << name << ": removed this replica's copy ("
            << (has_row ? "the set was replaced" : "the set was deleted")
            << " through another replica)";
  return true;
}

}  // namespace segserve::data
