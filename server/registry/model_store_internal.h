// File: server/registry/model_store_internal.h — what the stores' files share: the file
// store (FileModelStore: model_store.cc, model_store_delete.cc) with the names of a version
// directory, the on-disk readers and its in-process tables; with the PostgreSQL store
// (postgres_model_store.cc) the alias check of a delete and the description of a new
// version. Not part of the registry's API.
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
#include "nlohmann/json.hpp"
#include "server/model/model_config.h"
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

// PlanDelete's alias check, shared by both stores: FailedPrecondition naming every alias in
// `aliases` that blocks deleting `version` (or kAllVersions) of `name`, whose newest
// version is `newest`.
absl::Status CheckNoAliasBlocksDelete(const AliasTable& aliases, const std::string& name,
                                      int64_t version, int64_t newest);

// The JSON a version's metadata is stored as (meta.json / the database row), and the
// StoredVersion fields it fills.
struct VersionMeta {
  model::UnetConfig config;
  nlohmann::json metadata;
  int64_t checkpoint_bytes = 0;
  std::string checkpoint_sha256;
  int64_t created_unix_seconds = 0;
};
// 16 random hex digits (names of blob files and temporaries).
std::string RandomHex();
// "model 'm' v2", for messages.
std::string VersionLabel(const StoredVersion& stored);

// Verifies the checkpoint (model::VerifyCheckpoint) and describes it.
absl::StatusOr<VersionMeta> DescribeCheckpoint(const std::string& checkpoint_bytes);

}  // namespace store_internal

// The single-box store: files under <data_dir>/models (model_store.h's top comment).
class FileModelStore : public ModelStore {
 public:
  struct Shared;
  static absl::StatusOr<std::unique_ptr<ModelStore>> Open(const std::string& data_dir,
                                                          ModelStoreOptions options);
  FileModelStore(std::shared_ptr<Shared> shared, ModelStoreOptions options)
      : shared_(std::move(shared)), options_(std::move(options)) {}

  std::vector<StoredVersion> List() const override;
  absl::StatusOr<StoredVersion> Get(const std::string& name, int64_t version) const override;
  absl::StatusOr<StoredVersion> AddVersion(const std::string& name,
                                           const std::string& checkpoint_bytes) override;
  std::shared_ptr<const AliasTable> SharedAliases() const override;
  absl::Status SetAlias(const std::string& alias, const AliasTarget& target) override;
  absl::StatusOr<std::vector<StoredVersion>> PlanDelete(const std::string& name,
                                                        int64_t version) const override;
  absl::StatusOr<std::vector<StoredVersion>> Delete(const std::string& name,
                                                    int64_t version) override;
  absl::Status Refresh() override;
  absl::StatusOr<std::string> CheckpointFile(const StoredVersion& stored) override {
    return stored.checkpoint_path;
  }
  std::string Describe() const override;

 private:
  // PlanDelete with this process's alias writer lock held.
  absl::StatusOr<std::vector<StoredVersion>> PlanDeleteLocked(const std::string& name,
                                                              int64_t version) const;

  std::shared_ptr<Shared> shared_;
  ModelStoreOptions options_;
};

// The tables of one directory, shared by every FileModelStore of it in this process.
struct FileModelStore::Shared {
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
