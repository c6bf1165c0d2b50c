// File: server/data/upload.h — receiving a data set file by file into a hidden staging
// directory under <data_dir>/datasets/, validating it whole, and publishing it atomically
// (one rename) in the native layout. No gRPC here: server/api/datasets_service.cc feeds it
// from the Datasets.Upload stream. Staging directories are named
// ".upload-<upload_id>.<attempt>"; readers skip hidden entries, so a half-received set is
// never listed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/data/dataset.h"

namespace segserve::data {

inline constexpr char kUploadStagingPrefix[] = ".upload-";
// Inside a published set: which upload made it (a retry with the same id is answered
// with the set instead of ALREADY_EXISTS).
inline constexpr char kUploadMarkerFile[] = ".upload.json";

struct UploadLimits {
  int64_t max_dataset_bytes = 2ll << 30;  // --max_dataset_bytes
  int64_t max_file_bytes = 256ll << 20;   // any one file (never above max_dataset_bytes)
  int max_files = 200000;
  int64_t max_pixels = kDefaultMaxPixels;  // per image, when decoding
};

enum class UploadLayout { kNative, kNnUnet };

struct UploadHeader {
  std::string name;
  UploadLayout layout = UploadLayout::kNative;
  std::string upload_id;
  int64_t total_bytes = 0;
  int file_count = 0;
};

class DatasetUploads;

// One attempt at an upload: files arrive in order, then Publish. Not thread-safe (the
// caller feeds it one message at a time). Destroying an attempt that did not publish
// removes its staging directory.
class UploadAttempt {
 public:
  ~UploadAttempt();
  UploadAttempt(const UploadAttempt &) = delete;
  UploadAttempt &operator=(const UploadAttempt &) = delete;

  // Appends `data` at `offset` to `path` (see UploadFileChunk in datasets.proto for the
  // rules). InvalidArgument naming the file for a bad path, order, offset or size;
  // ResourceExhausted for a full disk.
  absl::Status Write(std::string_view path, int64_t offset, std::string_view data, bool last);

  // The stream ended: checks the counts against the header, validates the whole set
  // (OpenDataset with verify_contents, every file used), converts nnU-Net to native,
  // writes the upload marker, syncs the file system and renames the staging directory to
  // datasets/<name>. Returns the published set (root = its final directory).
  // InvalidArgument naming the file and the reason; AlreadyExists when the name was taken
  // meanwhile by another data set (by this same upload id: the published set is returned).
  absl::StatusOr<Dataset> Publish();

  // Leaves the staging directory in place on destruction (for a caller that must not do
  // file work on its thread): the next attempt with the same id, or the next server start,
  // removes it.
  void Abandon() { abandoned_ = true; }

  const std::string &staging_dir() const { return staging_; }

 private:
  friend class DatasetUploads;
  UploadAttempt(DatasetUploads &owner, UploadHeader header, std::string staging)
      : owner_(owner), header_(std::move(header)), staging_(std::move(staging)) {}
  absl::Status CloseFile(bool sync);
  absl::Status Fail(std::string_view path, std::string_view reason) const;
  absl::Status ConvertNnUnet(const Dataset &opened);
  absl::Status CheckEveryFileUsed(const Dataset &opened) const;

  DatasetUploads &owner_;
  const UploadHeader header_;
  const std::string staging_;    // absolute
  std::set<std::string> files_;  // relative paths received (complete or current)
  std::string current_;          // the file being written; empty between files
  int fd_ = -1;                  // current_'s descriptor
  int64_t current_bytes_ = 0;
  int64_t total_bytes_ = 0;
  bool published_ = false;
  bool abandoned_ = false;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

// The uploads of one datasets directory: starts attempts and tracks which staging
// directories are in use, so a new attempt removes only the leftovers of dead ones.
class DatasetUploads {
 public:
  // `datasets_dir`: <data_dir>/datasets (absolute or relative; must exist).
  DatasetUploads(std::string datasets_dir, UploadLimits limits);

  // Removes every staging directory in `datasets_dir` (call at server start, before any
  // upload) that nothing was written to for `min_idle`: 0 on a single box (every staging
  // directory is a dead process's); with replicas sharing the folder, long enough that an
  // upload another replica is receiving is kept. Returns how many were removed.
  static int RemoveStagingDirectories(const std::string &datasets_dir,
                                      std::chrono::seconds min_idle = std::chrono::seconds(0));

  // What Begin found.
  struct Begun {
    std::unique_ptr<UploadAttempt> attempt;  // set: receive the files
    std::optional<Dataset> published;        // set: this upload_id already published the set
  };
  // Checks the header (InvalidArgument naming the field), answers a set this upload_id
  // already published, refuses a name taken otherwise (AlreadyExists), removes staging
  // directories of earlier, dead attempts with the same id, and creates a fresh one.
  absl::StatusOr<Begun> Begin(UploadHeader header);

  const UploadLimits &limits() const { return limits_; }
  const std::string &datasets_dir() const { return dir_; }

 private:
  friend class UploadAttempt;
  void Release(const std::string &staging);
  // The set at `dir` if its marker names `upload_id`; nullopt otherwise.
  std::optional<Dataset> PublishedBy(const std::string &dir, const std::string &upload_id) const;

  const std::string dir_;  // absolute
  const UploadLimits limits_;
  absl::Mutex mu_;
  std::set<std::string> active_ ABSL_GUARDED_BY(mu_);  // staging directory names
  uint64_t attempts_ ABSL_GUARDED_BY(mu_) = 0;
};

// Checks an upload's relative file path for `layout` ("images/a.png"); InvalidArgument
// saying why otherwise. Exposed for tests.
absl::Status ValidateUploadPath(std::string_view path, UploadLayout layout);

}  // namespace segserve::data
