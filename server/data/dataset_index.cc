#include "server/data/dataset_index.h"

#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/dir_util.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/data/dataset_internal.h"
#include "server/data/postgres_dataset_index.h"
#include "server/data/upload.h"

namespace segserve::data {
namespace fs = std::filesystem;

bool DatasetEntry::operator==(const DatasetEntry &o) const {
  return name == o.name && channels == o.channels && images == o.images &&
         volumes == o.volumes && class_names == o.class_names && train == o.train &&
         val == o.val && test == o.test && disk_bytes == o.disk_bytes &&
         upload_id == o.upload_id && created_unix_seconds == o.created_unix_seconds;
}

DatasetEntry EntryOf(const std::string &name, const Dataset &dataset) {
  DatasetEntry entry;
  entry.name = name;
  entry.channels = dataset.channels;
  entry.images = static_cast<int>(dataset.samples.size());
  entry.volumes = static_cast<int>(dataset.volumes.size());
  for (const ClassInfo &cls : dataset.classes) entry.class_names.push_back(cls.name);
  entry.train = static_cast<int>(dataset.train.size());
  entry.val = static_cast<int>(dataset.val.size());
  entry.test = static_cast<int>(dataset.test.size());
  entry.disk_bytes = common::DirectoryBytes(dataset.root);
  if (auto marker = internal::ReadJsonFile(dataset.root + "/" + kUploadMarkerFile);
      marker.ok() && marker->is_object()) {
    entry.upload_id = marker->value("upload_id", std::string());
  }
  entry.created_unix_seconds = static_cast<int64_t>(std::time(nullptr));
  return entry;
}

std::string ReadFilesMarker(const std::string &folder) {
  absl::StatusOr<std::string> text = common::ReadFile(folder + "/" + kFilesMarkerFile);
  return text.ok() ? std::string(absl::StripAsciiWhitespace(*text)) : std::string();
}

std::vector<std::string> DatasetIndex::FolderNames() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto &entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    // Hidden: staging (".upload-", ".tmp-") and tombstones.
    if (name[0] != '.' && entry.is_directory(ec)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<DatasetEntry> DatasetIndex::ScanFolder(
    const std::function<bool(const std::string &)> &wanted) const {
  OpenOptions options;
  options.verify_contents = false;  // manifests and headers only
  options.volume_cache_bytes = 0;
  std::vector<DatasetEntry> entries;
  for (const std::string &name : FolderNames()) {
    if (!wanted(name)) continue;
    absl::StatusOr<Dataset> dataset = OpenDataset(dir_ + "/" + name, options);
    if (!dataset.ok()) continue;  // half-written or foreign folders are not data sets
    entries.push_back(EntryOf(name, *dataset));
  }
  return entries;
}

absl::Status DatasetIndex::CheckName(const std::string &name, const std::string &field) {
  if (name.empty()) return absl::InvalidArgumentError(field + ": required");
  if (name.find('/') != std::string::npos || name == "." || name == ".." || name[0] == '.') {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be a data set name (no '/', '.' or '..'), got '", name, "'"));
  }
  return absl::OkStatus();
}

absl::Status DatasetIndex::NotFound(const std::string &name, const std::string &field) {
  return absl::NotFoundError(
      absl::StrCat(field, ": data set '", name, "' not found under datasets/"));
}

absl::StatusOr<std::string> DatasetIndex::LocalDir(const std::string &name,
                                                   const std::string &field) {
  RETURN_IF_ERROR(CheckName(name, field));
  // Confined: a symbolic link out of datasets/ is refused.
  ASSIGN_OR_RETURN(std::string dir, common::ResolveUnderRoot(dir_, name, field));
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFound(name, field);
  return dir;
}

absl::StatusOr<int> DatasetIndex::Channels(const std::string &name, const std::string &field) {
  ASSIGN_OR_RETURN(std::string dir, DatasetIndex::LocalDir(name, field));
  absl::StatusOr<int> channels = ReadDatasetChannels(dir);
  return channels.ok() ? *channels : 0;
}

namespace {

// The folder is the index: nothing to record, nothing to reconcile.
class DirectoryDatasetIndex final : public DatasetIndex {
 public:
  explicit DirectoryDatasetIndex(std::string dir) : DatasetIndex(std::move(dir)) {}

  absl::StatusOr<std::vector<DatasetEntry>> List() override {
    std::vector<DatasetEntry> entries = ScanFolder([](const std::string &) { return true; });
    // The folder has no creation record: its modification time stands in.
    for (DatasetEntry &entry : entries) {
      struct stat st {};
      const std::string root = datasets_dir() + "/" + entry.name;
      if (::stat(root.c_str(), &st) == 0) entry.created_unix_seconds = st.st_mtime;
    }
    return entries;
  }
  absl::StatusOr<bool> Contains(const std::string &name) override {
    std::error_code ec;
    return fs::exists(fs::symlink_status(datasets_dir() + "/" + name, ec));
  }
  absl::Status Record(const DatasetEntry &) override { return absl::OkStatus(); }
  absl::Status Remove(const std::string &) override { return absl::OkStatus(); }
  absl::StatusOr<int> Reconcile() override { return 0; }
  std::string Describe() const override { return absl::StrCat("data sets in ", datasets_dir()); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<DatasetIndex>> DatasetIndex::Open(const std::string &datasets_dir,
                                                                 DatasetIndexOptions options) {
  RETURN_IF_ERROR(common::MakeDirectories(datasets_dir));
  const std::string dir = fs::absolute(datasets_dir).lexically_normal().string();
  if (options.database.conninfo.empty()) {
    return std::unique_ptr<DatasetIndex>(new DirectoryDatasetIndex(dir));
  }
  return PostgresDatasetIndex::Open(dir, std::move(options.database), options.files_in_database);
}

}  // namespace segserve::data
