// File: server/registry/model_store_internal.h — what model_store.cc and
// model_store_delete.cc share: the file names of a version directory, the on-disk readers
// and the in-process tables (ModelStore::Shared). Not part of the registry's API.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/registry/model_store.h"

namespace segserve::registry {
namespace store_internal {

constexpr char kCheckpointFile[] = "model.ckpt";
constexpr char kMetaFile[] = "meta.json";
constexpr char kAliasesFile[] = "aliases.json";
constexpr char kHighestFile[] = ".highest_version";

// Numbered version directories of `name` on disk, ascending.
std::vector<int64_t> VersionsOnDisk(const std::string& root, const std::string& name);
// One version as meta.json describes it.
absl::StatusOr<StoredVersion> ReadVersion(const std::string& root, const std::string& name,
                                          int64_t version);
// The highest version a delete removed (models/<name>/.highest_version), 0 when none.
int64_t HighestDeleted(const std::string& root, const std::string& name);
// aliases.json (empty when it does not exist).
absl::StatusOr<AliasTable> ReadAliasesFile(const std::string& path);

}  // namespace store_internal

// The tables of one directory, shared by every ModelStore of it in this process.
struct ModelStore::Shared {
  explicit Shared(std::string root_dir) : root(std::move(root_dir)) {}
  ~Shared() {
    {
      absl::MutexLock lock(&stop_mu);
      stop = true;
    }
    if (refresher.joinable()) refresher.join();
  }

  absl::Status Refresh() ABSL_LOCKS_EXCLUDED(mu, refresh_mu);
  void RefreshLoop(absl::Duration interval, std::function<void()> after_refresh);

  // Publishes a write of this process; a scan running meanwhile is discarded.
  void PublishVersion(StoredVersion stored) ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    versions[stored.name][stored.version] = std::move(stored);
    ++generation;
  }

  const std::string root;
  absl::Mutex add_mu;          // this process's AddVersion calls, one at a time
  absl::Mutex alias_write_mu;  // read-modify-write of aliases.json
  absl::Mutex refresh_mu;      // one scan at a time
  std::set<std::string> warned ABSL_GUARDED_BY(refresh_mu);  // broken versions reported
  // The tables. Held only for lookups and swaps, never across I/O.
  mutable absl::Mutex mu;
  std::map<std::string, std::map<int64_t, StoredVersion>> versions ABSL_GUARDED_BY(mu);
  std::shared_ptr<const AliasTable> aliases ABSL_GUARDED_BY(mu) = std::make_shared<AliasTable>();
  std::pair<int64_t, int64_t> aliases_stamp ABSL_GUARDED_BY(mu){-1, -1};
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;  // bumped by every write of this process

  absl::Mutex stop_mu;
  bool stop ABSL_GUARDED_BY(stop_mu) = false;
  std::thread refresher;
};

}  // namespace segserve::registry
