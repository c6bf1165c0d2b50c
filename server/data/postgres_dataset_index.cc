#include "server/data/postgres_dataset_index.h"

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/log.h"
#include "server/common/status_macros.h"

namespace segserve::data {
namespace {
using postgres::Statement;

const Statement kSelectAll{
    "datasets_select_all",
    "SELECT name, channels, images, volumes, class_names::text, train_images, val_images, "
    "test_images, disk_bytes, upload_id, created_unix_seconds FROM datasets ORDER BY name"};
const Statement kExists{"datasets_exists", "SELECT 1 FROM datasets WHERE name = $1"};
// A second Record of a name (a retry, or a Reconcile racing the publisher) keeps the
// first creation time.
// files_sha256 ($12, NULL for none) is kept when the upsert gives none: a replica without
// large objects re-recording a set does not orphan its stored files.
const Statement kUpsert{
    "datasets_upsert",
    "INSERT INTO datasets (name, channels, images, volumes, class_names, train_images, "
    "val_images, test_images, disk_bytes, upload_id, created_unix_seconds, files_sha256) VALUES "
    "($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, NULLIF($12, '')) ON CONFLICT (name) "
    "DO UPDATE SET channels = EXCLUDED.channels, images = EXCLUDED.images, volumes = "
    "EXCLUDED.volumes, class_names = EXCLUDED.class_names, train_images = "
    "EXCLUDED.train_images, val_images = EXCLUDED.val_images, test_images = "
    "EXCLUDED.test_images, disk_bytes = EXCLUDED.disk_bytes, upload_id = EXCLUDED.upload_id, "
    "files_sha256 = COALESCE(EXCLUDED.files_sha256, datasets.files_sha256)"};
const Statement kRowFiles{
    "datasets_row_files",
    "SELECT channels, COALESCE(files_sha256, '') FROM datasets WHERE name = $1"};
const Statement kAllDigests{"datasets_all_digests",
                            "SELECT name, COALESCE(files_sha256, '') FROM datasets"};

}  // namespace

absl::StatusOr<std::unique_ptr<DatasetIndex>> PostgresDatasetIndex::Open(
    const std::string &datasets_dir, postgres::ConnectOptions database, bool files_in_database) {
  ASSIGN_OR_RETURN(std::unique_ptr<postgres::Connection> db,
                   postgres::Connection::Open(std::move(database)));
  RETURN_IF_ERROR(postgres::ApplyMigrations(*db, kComponent, Migrations()));
  std::unique_ptr<PostgresDatasetIndex> index(
      new PostgresDatasetIndex(datasets_dir, std::move(db), files_in_database));
  ASSIGN_OR_RETURN(int adopted, index->Reconcile());
  LOG(INFO) << index->Describe()
            << (adopted > 0 ? absl::StrCat("; adopted ", adopted, " folder(s) it lacked") : "");
  return std::unique_ptr<DatasetIndex>(std::move(index));
}

PostgresDatasetIndex::PostgresDatasetIndex(std::string dir,
                                           std::unique_ptr<postgres::Connection> db,
                                           bool files_in_database)
    : DatasetIndex(std::move(dir)),
      files_in_database_(files_in_database),
      description_(absl::StrCat(
          "data-set index in ", db->description(),
          files_in_database ? ", files in large objects, cached under " : ", files under ",
          datasets_dir())),
      db_(std::move(db)) {}

std::string PostgresDatasetIndex::Describe() const { return description_; }

absl::StatusOr<std::vector<DatasetEntry>> PostgresDatasetIndex::SelectAll() {
  absl::MutexLock lock(&db_mu_);
  ASSIGN_OR_RETURN(postgres::Result rows, db_->Exec(kSelectAll));
  std::vector<DatasetEntry> entries;
  for (int r = 0; r < rows.rows(); ++r) {
    DatasetEntry entry;
    entry.name = rows.Text(r, 0);
    entry.channels = static_cast<int>(rows.Int(r, 1));
    entry.images = static_cast<int>(rows.Int(r, 2));
    entry.volumes = static_cast<int>(rows.Int(r, 3));
    const nlohmann::json classes = nlohmann::json::parse(rows.Text(r, 4), nullptr, false);
    if (classes.is_array()) {
      for (const auto &cls : classes) {
        if (cls.is_string()) entry.class_names.push_back(cls.get<std::string>());
      }
    }
    entry.train = static_cast<int>(rows.Int(r, 5));
    entry.val = static_cast<int>(rows.Int(r, 6));
    entry.test = static_cast<int>(rows.Int(r, 7));
    entry.disk_bytes = rows.Int(r, 8);
    entry.upload_id = rows.Text(r, 9);
    entry.created_unix_seconds = rows.Int(r, 10);
    entries.push_back(std::move(entry));
  }
  return entries;
}

absl::StatusOr<std::vector<DatasetEntry>> PostgresDatasetIndex::List() {
  // Sets published by a replica that died before recording them show up here too. A
  // replica that cannot reach the folder still answers from the table.
  if (absl::StatusOr<int> adopted = Reconcile(); !adopted.ok()) return adopted.status();
  return SelectAll();
}

absl::StatusOr<std::optional<PostgresDatasetIndex::RowFiles>> PostgresDatasetIndex::SelectRowFiles(
    const std::string &name) {
  absl::MutexLock lock(&db_mu_);
  ASSIGN_OR_RETURN(postgres::Result rows, db_->Exec(kRowFiles, {name}));
  if (rows.rows() == 0) return std::nullopt;
  return RowFiles{static_cast<int>(rows.Int(0, 0)), rows.Text(0, 1)};
}

absl::StatusOr<std::map<std::string, std::string>> PostgresDatasetIndex::SelectAllDigests() {
  absl::MutexLock lock(&db_mu_);
  ASSIGN_OR_RETURN(postgres::Result rows, db_->Exec(kAllDigests));
  std::map<std::string, std::string> digests;
  for (int r = 0; r < rows.rows(); ++r) digests[rows.Text(r, 0)] = rows.Text(r, 1);
  return digests;
}

absl::StatusOr<bool> PostgresDatasetIndex::Contains(const std::string &name) {
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::symlink_status(datasets_dir() + "/" + name, ec))) {
    if (!files_in_database_) return true;
    // A copy of a set deleted through another replica does not hold the name.
    ASSIGN_OR_RETURN(std::optional<RowFiles> row, SelectRowFiles(name));
    if (row.has_value() || !RemoveIfStale(name, "", false)) return true;
  }
  absl::MutexLock lock(&db_mu_);
  ASSIGN_OR_RETURN(postgres::Result rows, db_->Exec(kExists, {name}));
  return rows.rows() > 0;
}

absl::Status PostgresDatasetIndex::Upsert(postgres::Connection &db, const DatasetEntry &entry,
                                          const std::string &files_sha256) {
  const nlohmann::json classes = entry.class_names;
  return db
      .Exec(kUpsert,
            {entry.name, absl::StrCat(entry.channels), absl::StrCat(entry.images),
             absl::StrCat(entry.volumes), classes.dump(), absl::StrCat(entry.train),
             absl::StrCat(entry.val), absl::StrCat(entry.test), absl::StrCat(entry.disk_bytes),
             entry.upload_id, absl::StrCat(entry.created_unix_seconds), files_sha256})
      .status();
}

absl::Status PostgresDatasetIndex::Record(const DatasetEntry &entry) {
  if (files_in_database_) return StoreFiles(entry);
  absl::MutexLock lock(&db_mu_);
  return Upsert(*db_, entry, "");
}

absl::StatusOr<int> PostgresDatasetIndex::Reconcile() {
  const std::vector<std::string> folders = FolderNames();
  if (folders.empty()) return 0;
  ASSIGN_OR_RETURN(const auto digests, SelectAllDigests());
  // Folders without a row are adopted, except marked copies of sets deleted elsewhere. With
  // large objects, rows without files get them from their folder here.
  std::set<std::string> wanted;
  for (const std::string &name : folders) {
    const auto row = digests.find(name);
    const bool has_row = row != digests.end();
    if (files_in_database_ && RemoveIfStale(name, has_row ? row->second : "", has_row)) continue;
    if (!has_row || (files_in_database_ && row->second.empty())) wanted.insert(name);
  }
  int adopted = 0;
  for (const DatasetEntry &entry :
       ScanFolder([&](const std::string &name) { return wanted.count(name) > 0; })) {
    RETURN_IF_ERROR(Record(entry));
    if (digests.count(entry.name) == 0) {
      LOG(INFO) << "data-set index: adopted " << entry.name << " (a folder without a row)";
      ++adopted;
    } else {
      LOG(INFO) << "data-set index: stored the files of " << entry.name
                << " (recorded without them) as large objects";
    }
  }
  return adopted;
}

absl::StatusOr<std::string> PostgresDatasetIndex::LocalDir(const std::string &name,
                                                           const std::string &field) {
  RETURN_IF_ERROR(CheckName(name, field));
  const std::string dir = datasets_dir() + "/" + name;
  std::error_code ec;
  const bool has_folder = std::filesystem::is_directory(dir, ec);
  ASSIGN_OR_RETURN(std::optional<RowFiles> row, SelectRowFiles(name));
  if (!row.has_value() || row->files_sha256.empty()) {
    // Not recorded yet (published here a moment ago), or its files are in the folder only.
    if (has_folder) return dir;
    if (!row.has_value()) return NotFound(name, field);
    return absl::FailedPreconditionError(absl::StrCat(
        field, ": data set '", name, "' is indexed but its files are not in the database (",
        files_in_database_ ? "recorded by a replica without --blob_store=large_object"
                           : "this replica runs without --blob_store=large_object",
        ") and this replica has no folder datasets/", name,
        ": mount the shared volume, or let a replica with the folder and large_object store them"));
  }
  if (has_folder && ReadFilesMarker(dir) == row->files_sha256) {
    return dir;
  }
  absl::MutexLock lock(&files_mu_);
  RETURN_IF_ERROR(FetchFiles(name, row->files_sha256));
  return dir;
}

absl::StatusOr<int> PostgresDatasetIndex::Channels(const std::string &name,
                                                   const std::string &field) {
  RETURN_IF_ERROR(CheckName(name, field));
  ASSIGN_OR_RETURN(std::optional<RowFiles> row, SelectRowFiles(name));
  if (row.has_value()) return row->channels;
  return DatasetIndex::Channels(name, field);
}

}  // namespace segserve::data
