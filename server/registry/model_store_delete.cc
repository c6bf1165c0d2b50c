// File: server/registry/model_store_delete.cc — FileModelStore::PlanDelete and Delete: which
// versions a delete removes (aliases checked), and their durable removal.
#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/dir_util.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/registry/model_store.h"
#include "server/registry/model_store_internal.h"

namespace segserve::registry {
namespace fs = std::filesystem;
using namespace store_internal;  // NOLINT: the store's own helpers

absl::StatusOr<std::vector<StoredVersion>> FileModelStore::PlanDelete(const std::string& name,
                                                                      int64_t version) const {
  absl::MutexLock alias_lock(&shared_->alias_write_mu);
  return PlanDeleteLocked(name, version);
}

absl::StatusOr<std::vector<StoredVersion>> FileModelStore::PlanDeleteLocked(const std::string& name,
                                                                            int64_t version) const {
  RETURN_IF_ERROR(ValidateModelName(name, "name"));
  if (version < 1 && version != kAllVersions) {
    return absl::InvalidArgumentError("version: must be >= 1 (or every version)");
  }
  const std::string& root = shared_->root;
  const std::vector<int64_t> versions = VersionsOnDisk(root, name);
  if (versions.empty()) return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
  if (version != kAllVersions && !std::binary_search(versions.begin(), versions.end(), version)) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", version));
  }
  absl::StatusOr<AliasTable> aliases = ReadAliasesFile(root + "/" + kAliasesFile);
  if (!aliases.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot check the aliases before deleting: ", aliases.status().message()));
  }
  RETURN_IF_ERROR(CheckNoAliasBlocksDelete(*aliases, name, version, versions.back()));
  std::vector<StoredVersion> planned;
  for (int64_t v : versions) {
    if (version != kAllVersions && v != version) continue;
    absl::StatusOr<StoredVersion> stored = ReadVersion(root, name, v);
    if (stored.ok()) {
      planned.push_back(std::move(*stored));
    } else {
      // A broken version (unreadable meta.json) can still be deleted.
      StoredVersion broken;
      broken.name = name;
      broken.version = v;
      broken.disk_bytes = common::DirectoryBytes(absl::StrCat(root, "/", name, "/", v));
      planned.push_back(std::move(broken));
    }
  }
  return planned;
}

absl::StatusOr<std::vector<StoredVersion>> FileModelStore::Delete(const std::string& name,
                                                                  int64_t version) {
  // Writers of this process wait; readers keep answering from the tables meanwhile.
  absl::MutexLock add_lock(&shared_->add_mu);
  absl::MutexLock alias_lock(&shared_->alias_write_mu);
  ASSIGN_OR_RETURN(std::vector<StoredVersion> planned, PlanDeleteLocked(name, version));
  const std::string model_dir = absl::StrCat(shared_->root, "/", name);
  if (version != kAllVersions) {
    // Remember the number before it disappears, so it is never handed out again.
    const int64_t highest = std::max(HighestDeleted(shared_->root, name), version);
    RETURN_IF_ERROR(common::WriteFileAtomically(absl::StrCat(model_dir, "/", kHighestFile),
                                                absl::StrCat(highest)));
  }
  std::vector<StoredVersion> deleted;
  absl::Status failed = absl::OkStatus();
  for (StoredVersion& stored : planned) {
    absl::StatusOr<int64_t> removed =
        common::RemoveDirectoryDurably(absl::StrCat(model_dir, "/", stored.version));
    if (!removed.ok()) {
      failed = absl::Status(
          removed.status().code(),
          absl::StrCat("deleting model ", name, " v", stored.version, " failed after deleting ",
                       deleted.size(), " version(s): ", removed.status().message()));
      break;
    }
    LOG(INFO) << "deleted model " << name << " v" << stored.version << " (" << *removed
              << " bytes)";
    deleted.push_back(std::move(stored));
  }
  {
    absl::MutexLock lock(&shared_->mu);
    auto it = shared_->versions.find(name);
    if (it != shared_->versions.end()) {
      for (const StoredVersion& stored : deleted) it->second.erase(stored.version);
      if (it->second.empty()) shared_->versions.erase(it);
    }
    ++shared_->generation;
  }
  if (!failed.ok()) return failed;
  if (version == kAllVersions) {
    // Nothing of the name is left but, perhaps, .highest_version: the name starts afresh.
    std::error_code ec;
    fs::remove(absl::StrCat(model_dir, "/", kHighestFile), ec);
    fs::remove(model_dir, ec);  // fails harmlessly when a writer just created a temporary
  }
  return deleted;
}

}  // namespace segserve::registry
