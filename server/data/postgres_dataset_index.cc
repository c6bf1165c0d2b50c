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
const Statement kUpsert{
    "datasets_upsert",
    "INSERT INTO datasets (name, channels, images, volumes, class_names, train_images, "
    "val_images, test_images, disk_bytes, upload_id, created_unix_seconds) VALUES ($1, $2, $3, "
    "$4, $5::jsonb, $6, $7, $8, $9, $10, $11) ON CONFLICT (name) DO UPDATE SET channels = "
    "EXCLUDED.channels, images = EXCLUDED.images, volumes = EXCLUDED.volumes, class_names = "
    "EXCLUDED.class_names, train_images = EXCLUDED.train_images, val_images = "
    "EXCLUDED.val_images, test_images = EXCLUDED.test_images, disk_bytes = "
    "EXCLUDED.disk_bytes, upload_id = EXCLUDED.upload_id"};
const Statement kDelete{"datasets_delete", "DELETE FROM datasets WHERE name = $1"};

}  // namespace

absl::StatusOr<std::unique_ptr<DatasetIndex>> PostgresDatasetIndex::Open(
    const std::string &datasets_dir, postgres::ConnectOptions database) {
  ASSIGN_OR_RETURN(std::unique_ptr<postgres::Connection> db,
                   postgres::Connection::Open(std::move(database)));
  RETURN_IF_ERROR(postgres::ApplyMigrations(*db, kComponent, Migrations()));
  std::unique_ptr<PostgresDatasetIndex> index(new PostgresDatasetIndex(datasets_dir, std::move(db)));
  ASSIGN_OR_RETURN(int adopted, index->Reconcile());
  LOG(INFO) << index->Describe()
            << (adopted > 0 ? absl::StrCat("; adopted ", adopted, " folder(s) it lacked") : "");
  return std::unique_ptr<DatasetIndex>(std::move(index));
}

PostgresDatasetIndex::PostgresDatasetIndex(std::string dir, std::unique_ptr<postgres::Connection> db)
    : DatasetIndex(std::move(dir)),
      description_(absl::StrCat("data-set index in ", db->description(), ", files under ",
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

absl::StatusOr<bool> PostgresDatasetIndex::Contains(const std::string &name) {
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::symlink_status(datasets_dir() + "/" + name, ec))) {
    return true;
  }
  absl::MutexLock lock(&db_mu_);
  ASSIGN_OR_RETURN(postgres::Result rows, db_->Exec(kExists, {name}));
  return rows.rows() > 0;
}

absl::Status PostgresDatasetIndex::Record(const DatasetEntry &entry) {
  const nlohmann::json classes = entry.class_names;
  absl::MutexLock lock(&db_mu_);
  return db_
      ->Exec(kUpsert, {entry.name, absl::StrCat(entry.channels), absl::StrCat(entry.images),
                       absl::StrCat(entry.volumes), classes.dump(), absl::StrCat(entry.train),
                       absl::StrCat(entry.val), absl::StrCat(entry.test),
                       absl::StrCat(entry.disk_bytes), entry.upload_id,
                       absl::StrCat(entry.created_unix_seconds)})
      .status();
}

absl::Status PostgresDatasetIndex::Remove(const std::string &name) {
  absl::MutexLock lock(&db_mu_);
  return db_->Exec(kDelete, {name}).status();
}

absl::StatusOr<int> PostgresDatasetIndex::Reconcile() {
  const std::vector<std::string> folders = FolderNames();
  if (folders.empty()) return 0;
  ASSIGN_OR_RETURN(std::vector<DatasetEntry> rows, SelectAll());
  std::set<std::string> indexed;
  for (const DatasetEntry &row : rows) indexed.insert(row.name);
  int adopted = 0;
  for (const DatasetEntry &entry :
       ScanFolder([&](const std::string &name) { return indexed.count(name) == 0; })) {
    RETURN_IF_ERROR(Record(entry));
    LOG(INFO) << "data-set index: adopted " << entry.name << " (a folder without a row)";
    ++adopted;
  }
  return adopted;
}

}  // namespace segserve::data
