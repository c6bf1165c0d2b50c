#include "server/registry/model_store.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "server/common/dir_util.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/model/checkpoint.h"
#include "server/registry/model_store_internal.h"
#include "server/registry/postgres_model_store.h"

namespace segserve::registry {
namespace fs = std::filesystem;
namespace {


absl::StatusOr<nlohmann::json> ParseJson(const std::string& text, const std::string& what) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::DataLossError(absl::StrCat(what, ": invalid JSON"));
  return json;
}

// Drawn once per process: tells this process's temporaries from those of an earlier
// process that had the same pid (containers restart with the same pids).
uint64_t Incarnation() {
  static const uint64_t incarnation = std::random_device{}();
  return incarnation;
}

// ".tmp-<pid>-<incarnation>-<random>": a version being written.
std::string TempDirName() {
  return absl::StrCat(".tmp-", ::getpid(), "-", Incarnation(), "-", std::random_device{}());
}

// True for a temporary no live writer owns: its process is gone, or it is an earlier
// incarnation of our pid. Temporaries of other live processes (a second server or tool on
// the same data dir) are left to them. Unparsable ".tmp-" names are stale.
bool IsStaleTemp(const std::string& filename) {
  std::vector<std::string> parts = absl::StrSplit(filename.substr(5), '-');
  int64_t pid = 0;
  uint64_t incarnation = 0;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &pid) ||
      !absl::SimpleAtoi(parts[1], &incarnation) || pid <= 0) {
    return true;
  }
  if (pid == ::getpid()) return incarnation != Incarnation();
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

namespace store_internal {

// Numbered version directories of `name` on disk, ascending.
std::vector<int64_t> VersionsOnDisk(const std::string& root, const std::string& name) {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root + "/" + name, ec)) {
    int64_t version = 0;
    if (entry.is_directory() && absl::SimpleAtoi(entry.path().filename().string(), &version) &&
        version > 0) {
      versions.push_back(version);
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

absl::StatusOr<StoredVersion> ReadVersion(const std::string& root, const std::string& name,
                                          int64_t version) {
  const std::string dir = absl::StrCat(root, "/", name, "/", version);
  ASSIGN_OR_RETURN(std::string meta_text, common::ReadFile(dir + "/" + kMetaFile));
  ASSIGN_OR_RETURN(nlohmann::json meta, ParseJson(meta_text, dir + "/" + kMetaFile));
  StoredVersion stored;
  stored.name = name;
  stored.version = version;
  ASSIGN_OR_RETURN(stored.config, model::UnetConfigFromJson(meta.value("config", nlohmann::json{})));
  stored.metadata = meta.value("metadata", nlohmann::json::object());
  stored.checkpoint_path = dir + "/" + kCheckpointFile;
  stored.checkpoint_bytes = meta.value("checkpoint_bytes", int64_t{0});
  stored.checkpoint_sha256 = meta.value("checkpoint_sha256", "");
  stored.created_unix_seconds = meta.value("created_unix_seconds", int64_t{0});
  stored.disk_bytes = common::DirectoryBytes(dir);
  return stored;
}

// The highest version a delete removed (models/<name>/.highest_version), 0 when none.
int64_t HighestDeleted(const std::string& root, const std::string& name) {
  auto text = common::ReadFile(absl::StrCat(root, "/", name, "/", kHighestFile));
  int64_t highest = 0;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &highest)) return 0;
  return highest;
}

// (modification time in ns, size) of aliases.json; (0, 0) when it does not exist.
std::pair<int64_t, int64_t> AliasesStamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {0, 0};
  return {static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
          static_cast<int64_t>(st.st_size)};
}

absl::StatusOr<AliasTable> ReadAliasesFile(const std::string& path) {
  AliasTable loaded;
  if (AliasesStamp(path).second == 0) return loaded;
  ASSIGN_OR_RETURN(std::string text, common::ReadFile(path));
  ASSIGN_OR_RETURN(nlohmann::json json, ParseJson(text, kAliasesFile));
  for (const auto& [alias, target] : json.items()) {
    loaded[alias] = AliasTarget{target.value("name", ""), target.value("version", int64_t{0})};
  }
  return loaded;
}

absl::Status CheckNoAliasBlocksDelete(const AliasTable& aliases, const std::string& name,
                                      int64_t version, int64_t newest) {
  std::vector<std::string> blocking;
  for (const auto& [alias, target] : aliases) {
    if (target.name != name) continue;
    if (version == ModelStore::kAllVersions) {
      blocking.push_back(absl::StrCat("'", alias, "' -> ", name,
                                      target.version ? absl::StrCat(":", target.version) : ""));
    } else if (target.version == version) {
      blocking.push_back(absl::StrCat("'", alias, "' -> ", name, ":", version));
    } else if (target.version == 0 && version == newest) {
      blocking.push_back(
          absl::StrCat("'", alias, "' -> ", name, " (its newest version, ", version, ")"));
    }
  }
  if (blocking.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("model '", name, "'",
                   version == ModelStore::kAllVersions ? "" : absl::StrCat(" version ", version),
                   " is the target of alias ", absl::StrJoin(blocking, ", alias "),
                   "; point the alias at another model (Models.SetAlias) first"));
}

std::string RandomHex() {
  std::random_device random;
  return absl::StrCat(absl::Hex(random(), absl::kZeroPad8), absl::Hex(random(), absl::kZeroPad8));
}

std::string VersionLabel(const StoredVersion& stored) {
  return absl::StrCat("model '", stored.name, "' v", stored.version);
}

absl::StatusOr<VersionMeta> DescribeCheckpoint(const std::string& checkpoint_bytes) {
  // Verified before storing (checksum, header, tensor table), without building the model,
  // so the bytes are the only copy of the checkpoint in memory.
  ASSIGN_OR_RETURN(model::CheckpointInfo info, model::VerifyCheckpoint(checkpoint_bytes));
  VersionMeta meta;
  meta.config = info.config;
  meta.metadata = std::move(info.metadata);
  meta.checkpoint_bytes = static_cast<int64_t>(checkpoint_bytes.size());
  meta.checkpoint_sha256 = common::Sha256Hex(checkpoint_bytes);
  meta.created_unix_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  return meta;
}

}  // namespace store_internal

using namespace store_internal;  // NOLINT: this file is the helpers' home

absl::Status FileModelStore::Shared::Refresh() {
  absl::MutexLock scan_lock(&refresh_mu);
  uint64_t generation_at_start = 0;
  std::set<std::pair<std::string, int64_t>> known;
  std::pair<int64_t, int64_t> known_stamp;
  {
    absl::MutexLock lock(&mu);
    generation_at_start = generation;
    known_stamp = aliases_stamp;
    for (const auto& [name, by_version] : versions) {
      for (const auto& entry : by_version) known.emplace(name, entry.first);
    }
  }
  // The scan, without the table lock.
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string filename = entry.path().filename().string();
    if (entry.is_directory() && filename[0] != '.') names.push_back(filename);
  }
  if (ec) return absl::UnavailableError(absl::StrCat("cannot list ", root, ": ", ec.message()));
  std::set<std::pair<std::string, int64_t>> present;
  std::vector<StoredVersion> added;
  for (const std::string& name : names) {
    for (int64_t version : VersionsOnDisk(root, name)) {
      present.emplace(name, version);
      if (known.count({name, version})) continue;
      auto stored = ReadVersion(root, name, version);
      if (stored.ok()) {
        added.push_back(std::move(*stored));
      } else if (warned.insert(absl::StrCat(name, ":", version)).second) {
        LOG(WARNING) << "skipping model " << name << " v" << version << ": " << stored.status();
      }
    }
  }
  const std::string aliases_path = root + "/" + kAliasesFile;
  const std::pair<int64_t, int64_t> stamp = AliasesStamp(aliases_path);
  std::optional<AliasTable> new_aliases;
  if (stamp != known_stamp) {
    auto read = ReadAliasesFile(aliases_path);
    if (read.ok()) {
      new_aliases = std::move(*read);
    } else {
      LOG(WARNING) << "keeping the previous aliases: " << read.status();
    }
  }
  absl::MutexLock lock(&mu);
  if (generation != generation_at_start) return absl::OkStatus();  // a newer write won
  for (auto name_it = versions.begin(); name_it != versions.end();) {
    auto& by_version = name_it->second;
    for (auto it = by_version.begin(); it != by_version.end();) {
      it = present.count({name_it->first, it->first}) ? std::next(it) : by_version.erase(it);
    }
    name_it = by_version.empty() ? versions.erase(name_it) : std::next(name_it);
  }
  for (StoredVersion& stored : added) {
    const std::string name = stored.name;
    const int64_t version = stored.version;
    versions[name][version] = std::move(stored);
  }
  if (new_aliases) {
    aliases = std::make_shared<const AliasTable>(std::move(*new_aliases));
    aliases_stamp = stamp;
  }
  return absl::OkStatus();
}

void FileModelStore::Shared::RefreshLoop(absl::Duration interval,
                                         std::function<void()> after_refresh) {
  for (;;) {
    {
      absl::MutexLock lock(&stop_mu);
      if (stop_mu.AwaitWithTimeout(absl::Condition(&stop), interval)) return;
    }
    if (absl::Status s = Refresh(); !s.ok()) LOG(WARNING) << "model store refresh: " << s;
    if (after_refresh) after_refresh();
  }
}

absl::StatusOr<std::unique_ptr<ModelStore>> ModelStore::Open(const std::string& data_dir,
                                                            ModelStoreOptions options) {
  if (!options.database.conninfo.empty()) {
    return PostgresModelStore::Open(data_dir, std::move(options));
  }
  return FileModelStore::Open(data_dir, std::move(options));
}

absl::StatusOr<BlobBackend> ParseBlobBackend(std::string_view text, std::string_view field) {
  if (text == "directory") return BlobBackend::kDirectory;
  if (text == "large_object") return BlobBackend::kLargeObject;
  return absl::InvalidArgumentError(absl::StrCat(std::string(field),
                                                 ": must be 'directory' or 'large_object', got '",
                                                 std::string(text), "'"));
}

std::string_view BlobBackendName(BlobBackend backend) {
  return backend == BlobBackend::kLargeObject ? "large_object" : "directory";
}

absl::StatusOr<std::unique_ptr<ModelStore>> FileModelStore::Open(const std::string& data_dir,
                                                                 ModelStoreOptions options) {
  const std::string relative_root = data_dir + "/models";
  RETURN_IF_ERROR(common::MakeDirectories(relative_root));
  const std::string root = fs::absolute(relative_root).lexically_normal().string();
  // A crash (kill -9, power loss) while a version was written leaves its temporary
  // directory; it was never visible (only numbered directories are read).
  std::error_code ec;
  std::vector<fs::path> stale;
  // A crash during a delete leaves a tombstone: the delete was committed by its rename.
  common::RemoveTombstones(root);
  for (const auto& model_dir : fs::directory_iterator(root, ec)) {
    if (!model_dir.is_directory()) continue;
    common::RemoveTombstones(model_dir.path().string());
    std::error_code inner;
    for (const auto& entry : fs::directory_iterator(model_dir.path(), inner)) {
      const std::string filename = entry.path().filename().string();
      if (filename.rfind(".tmp-", 0) == 0 && IsStaleTemp(filename)) stale.push_back(entry.path());
    }
  }
  for (const fs::path& path : stale) {
    LOG(WARNING) << "removing incomplete model version " << path.string()
                 << " (left by an interrupted import or registration)";
    fs::remove_all(path, ec);
    if (ec) LOG(WARNING) << "cannot remove " << path.string() << ": " << ec.message();
  }

  // One Shared per directory in this process.
  static absl::Mutex registry_mu(absl::kConstInit);
  static auto* shared_by_root = new std::map<std::string, std::weak_ptr<Shared>>();
  std::shared_ptr<Shared> shared;
  bool created = false;
  {
    absl::MutexLock lock(&registry_mu);
    for (auto it = shared_by_root->begin(); it != shared_by_root->end();) {
      it = it->second.expired() ? shared_by_root->erase(it) : std::next(it);
    }
    auto it = shared_by_root->find(root);
    if (it != shared_by_root->end()) shared = it->second.lock();
    if (shared == nullptr) {
      shared = std::make_shared<Shared>(root);
      (*shared_by_root)[root] = shared;
      created = true;
    }
  }
  // Reopening reads the current state too (the caller may have written meanwhile).
  RETURN_IF_ERROR(shared->Refresh());
  if (created && options.refresh_interval > absl::ZeroDuration()) {
    Shared* raw = shared.get();
    shared->refresher = std::thread([raw, interval = options.refresh_interval,
                                     hook = options.after_refresh_for_testing] {
      raw->RefreshLoop(interval, hook);
    });
  }
  return std::unique_ptr<ModelStore>(new FileModelStore(std::move(shared), std::move(options)));
}

std::string FileModelStore::Describe() const { return "files under " + shared_->root; }

absl::Status FileModelStore::Refresh() { return shared_->Refresh(); }

std::vector<StoredVersion> FileModelStore::List() const {
  std::vector<StoredVersion> out;
  absl::MutexLock lock(&shared_->mu);
  for (const auto& [name, by_version] : shared_->versions) {
    for (const auto& entry : by_version) out.push_back(entry.second);
  }
  return out;
}

absl::StatusOr<StoredVersion> FileModelStore::Get(const std::string& name, int64_t version) const {
  RETURN_IF_ERROR(ValidateModelName(name, "model.name"));
  absl::MutexLock lock(&shared_->mu);
  auto it = shared_->versions.find(name);
  if (it == shared_->versions.end() || it->second.empty()) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
  }
  auto v = version == 0 ? std::prev(it->second.end()) : it->second.find(version);
  if (v == it->second.end()) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", version));
  }
  return v->second;
}

absl::StatusOr<StoredVersion> FileModelStore::AddVersion(const std::string& name,
                                                         const std::string& checkpoint_bytes) {
  RETURN_IF_ERROR(ValidateModelName(name, "name"));
  ASSIGN_OR_RETURN(VersionMeta described, DescribeCheckpoint(checkpoint_bytes));
  const std::string& root = shared_->root;
  // Serialises this process's writers only; readers use the tables under shared_->mu.
  absl::MutexLock add_lock(&shared_->add_mu);
  const std::vector<int64_t> versions = VersionsOnDisk(root, name);
  int64_t version =
      std::max(versions.empty() ? 0 : versions.back(), HighestDeleted(root, name)) + 1;
  const std::string model_dir = root + "/" + name;
  const std::string tmp_dir = absl::StrCat(model_dir, "/", TempDirName());
  nlohmann::json meta = {{"config", model::ToJson(described.config)},
                         {"metadata", described.metadata},
                         {"checkpoint_bytes", described.checkpoint_bytes},
                         {"checkpoint_sha256", described.checkpoint_sha256},
                         {"created_unix_seconds", described.created_unix_seconds}};
  // A failed write (a full disk) leaves nothing behind: the partial version is removed.
  absl::Status written =
      common::WriteFileAtomically(tmp_dir + "/" + kCheckpointFile, checkpoint_bytes);
  if (written.ok()) written = common::WriteFileAtomically(tmp_dir + "/" + kMetaFile, meta.dump(2));
  if (!written.ok()) {
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);
    return absl::Status(written.code(),
                        absl::StrCat("cannot store model '", name, "': ", written.message()));
  }
  if (options_.before_commit_for_testing) options_.before_commit_for_testing(name);
  // rename(2) onto an existing (non-empty) version directory fails: another writer took
  // that number, so take the next one.
  std::string final_dir;
  for (int attempt = 0;; ++attempt, ++version) {
    final_dir = absl::StrCat(model_dir, "/", version);
    if (::rename(tmp_dir.c_str(), final_dir.c_str()) == 0) break;
    if ((errno != EEXIST && errno != ENOTEMPTY) || attempt >= 1000) {
      const std::string error = std::strerror(errno);
      std::error_code ec;
      fs::remove_all(tmp_dir, ec);
      return absl::InternalError(absl::StrCat("cannot register ", final_dir, ": ", error));
    }
  }
  // The rename is the commit: make it durable before the version is reported.
  if (absl::Status synced = common::SyncDirectory(model_dir); !synced.ok()) {
    LOG(WARNING) << "registered model " << name << " v" << version
                 << " may not survive a power loss: " << synced;
  }
  LOG(INFO) << "registered model " << name << " v" << version;
  ASSIGN_OR_RETURN(StoredVersion stored, ReadVersion(root, name, version));
  shared_->PublishVersion(stored);
  return stored;
}

std::shared_ptr<const AliasTable> FileModelStore::SharedAliases() const {
  absl::MutexLock lock(&shared_->mu);
  return shared_->aliases;
}

absl::Status FileModelStore::SetAlias(const std::string& alias, const AliasTarget& target) {
  RETURN_IF_ERROR(ValidateModelName(alias, "alias"));
  absl::MutexLock write_lock(&shared_->alias_write_mu);
  // Start from the file, not the table: another process may have changed it.
  const std::string path = shared_->root + "/" + kAliasesFile;
  ASSIGN_OR_RETURN(AliasTable updated, ReadAliasesFile(path));
  updated[alias] = target;
  nlohmann::json json = nlohmann::json::object();
  for (const auto& [name, t] : updated) json[name] = {{"name", t.name}, {"version", t.version}};
  RETURN_IF_ERROR(common::WriteFileAtomically(path, json.dump(2)));
  const std::pair<int64_t, int64_t> stamp = AliasesStamp(path);
  absl::MutexLock lock(&shared_->mu);
  shared_->aliases = std::make_shared<const AliasTable>(std::move(updated));
  shared_->aliases_stamp = stamp;
  ++shared_->generation;
  return absl::OkStatus();
}

}  // namespace segserve::registry
