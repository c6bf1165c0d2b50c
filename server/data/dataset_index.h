// File: server/data/dataset_index.h — which data sets exist and what they hold, for
// Datasets.List, the name checks of Generate and Upload, and Delete. Two backends behind
// one interface, which the API, the generation runner and the delete path do not tell
// apart:
//   - the directory itself (DirectoryDatasetIndex, the single-box default): a data set is
//     a complete folder <data_dir>/datasets/<name> (hidden entries are staging or
//     tombstones); List opens each manifest and sums each folder's bytes.
//   - a table in PostgreSQL (--database; PostgresDatasetIndex, postgres_dataset_index.h):
//     every replica answers List from the table, also one without the shared volume. The
//     files stay on the shared volume (trainers and analyses read them there), or, with
//     --blob_store=large_object, are also stored as large objects and fetched by LocalDir
//     into the datasets/ folder of a replica that lacks them (postgres_dataset_files.cc).
// Publishing stays the folder's atomic rename; the index is told afterwards (Record) and
// told of a removal after the folder is gone (Remove), so a crash between the two leaves
// a folder the index lacks (adopted by the next Reconcile) or a row whose folder is gone
// (listed until `datasets delete` removes it, which tolerates the missing folder).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/data/dataset.h"
#include "server/postgres/connection.h"

namespace segserve::data {

// A data set as the index knows it.
struct DatasetEntry {
  std::string name;
  int channels = 0;
  int images = 0;                        // samples (a volume's slices count one each)
  int volumes = 0;                       // NIfTI volumes; 0 for 2-D images
  std::vector<std::string> class_names;  // in class-id order
  int train = 0, val = 0, test = 0;      // samples per split
  int64_t disk_bytes = 0;                // apparent file sizes of the folder
  std::string upload_id;                 // the upload that published it; empty otherwise
  int64_t created_unix_seconds = 0;      // when the index first recorded it
  bool operator==(const DatasetEntry &o) const;
};

// The entry of an opened set (created_unix_seconds: now); reads the upload marker and
// sums the folder's bytes.
DatasetEntry EntryOf(const std::string &name, const Dataset &dataset);

// In a data-set folder fetched from or stored to the database: the digest of its file list
// (files_sha256 of its row). Hidden, so it is not one of the set's files.
inline constexpr char kFilesMarkerFile[] = ".files.sha256";

// The digest in `folder`'s kFilesMarkerFile; empty when it has none.
std::string ReadFilesMarker(const std::string &folder);

struct DatasetIndexOptions {
  // Empty conninfo: the directory index. Otherwise the PostgreSQL table.
  postgres::ConnectOptions database;
  // With a database: the files of every recorded set are also stored as large objects
  // (--blob_store=large_object), and LocalDir fetches them where the folder is missing.
  bool files_in_database = false;
};

class DatasetIndex {
 public:
  // `datasets_dir`: <data_dir>/datasets (created if missing). The PostgreSQL index
  // connects, migrates (component "datasets") and reconciles (below). Errors as
  // PostgresJobStore::Open for the database.
  static absl::StatusOr<std::unique_ptr<DatasetIndex>> Open(const std::string &datasets_dir,
                                                            DatasetIndexOptions options);
  virtual ~DatasetIndex() = default;

  // Every data set, sorted by name.
  virtual absl::StatusOr<std::vector<DatasetEntry>> List() = 0;
  // Whether `name` is taken: by an indexed set, or by any entry named so in the folder
  // (a set the index was not told of yet, or a foreign file the rename would collide with).
  virtual absl::StatusOr<bool> Contains(const std::string &name) = 0;
  // A set was published under `name` (its folder renamed into place). Idempotent: a
  // second Record of the same name replaces the entry but keeps its creation time.
  virtual absl::Status Record(const DatasetEntry &entry) = 0;
  // The folder of `name` is gone (or was never there). Idempotent.
  virtual absl::Status Remove(const std::string &name) = 0;
  // Records every complete folder the index lacks (a crash after a rename, a set copied
  // in by hand); a no-op for the directory index. Returns how many were added.
  virtual absl::StatusOr<int> Reconcile() = 0;
  // The folder holding the complete set `name`, for reading its files: the folder in
  // datasets_dir(), fetched there first when its files are in the database and this replica
  // has no current copy. `field` names the request field in errors: InvalidArgument for a
  // name that is not one (a '/', "." or ".."), NotFound for a set that does not exist here.
  virtual absl::StatusOr<std::string> LocalDir(const std::string &name, const std::string &field);
  // The channel count of set `name` without fetching its files (submit-time checks); 0 when
  // its manifest cannot be read (left to the job, which opens the set whole). Errors as
  // LocalDir's for a missing set.
  virtual absl::StatusOr<int> Channels(const std::string &name, const std::string &field);
  // "data sets in <dir>" / "data-set index in <database>" for logs.
  virtual std::string Describe() const = 0;

  const std::string &datasets_dir() const { return dir_; }
  // InvalidArgument naming `field` unless `name` can be a folder name in datasets_dir().
  static absl::Status CheckName(const std::string &name, const std::string &field);

 protected:
  explicit DatasetIndex(std::string datasets_dir) : dir_(std::move(datasets_dir)) {}
  // The complete data sets in the folder that `wanted` accepts, opened from their
  // manifests and headers (no pixel decoding); unreadable or foreign folders are skipped.
  std::vector<DatasetEntry> ScanFolder(const std::function<bool(const std::string &)> &wanted) const;
  // The names of the folder's visible subdirectories, sorted.
  std::vector<std::string> FolderNames() const;
  // NotFound: "<field>: data set '<name>' not found under datasets/".
  static absl::Status NotFound(const std::string &name, const std::string &field);

 private:
  const std::string dir_;  // absolute
};

}  // namespace segserve::data
