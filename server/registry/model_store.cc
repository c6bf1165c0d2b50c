#include "server/registry/model_store.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/common/dir_util.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/model/checkpoint.h"

namespace segserve::registry {
namespace fs = std::filesystem;
namespace {

constexpr char kCheckpointFile[] = "model.ckpt";
constexpr char kMetaFile[] = "meta.json";
constexpr char kAliasesFile[] = "aliases.json";
constexpr char kHighestFile[] = ".highest_version";

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

absl::Status ValidateModelName(const std::string& name, const std::string& field) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be 1..128 characters"));
  }
  if (name[0] == '.') {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not start with '.'"));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": only [A-Za-z0-9._-] allowed, got '", name, "'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ModelStore>> ModelStore::Open(const std::string& data_dir) {
  const std::string root = data_dir + "/models";
  RETURN_IF_ERROR(common::MakeDirectories(root));
  std::unique_ptr<ModelStore> store(new ModelStore(fs::absolute(root).lexically_normal().string()));
  // A crash (kill -9, power loss) while a version was written leaves its temporary
  // directory; it was never visible (List and Get read only numbered directories).
  std::error_code ec;
  std::vector<fs::path> stale;
  // A crash during a delete leaves a tombstone: the delete was committed by its rename.
  common::RemoveTombstones(store->root_);
  for (const auto& model_dir : fs::directory_iterator(store->root_, ec)) {
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
  {
    std::lock_guard<std::mutex> lock(store->mu_);
    RETURN_IF_ERROR(store->RefreshAliasesLocked());
  }
  return store;
}

absl::Status ModelStore::RefreshAliasesLocked() const {
  const std::string path = root_ + "/" + kAliasesFile;
  struct stat st {};
  std::pair<int64_t, int64_t> stamp{0, 0};
  if (::stat(path.c_str(), &st) == 0) {
    stamp = {static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
             static_cast<int64_t>(st.st_size)};
  }
  if (stamp == aliases_stamp_) return absl::OkStatus();
  std::map<std::string, AliasTarget> loaded;
  if (stamp.second > 0) {
    ASSIGN_OR_RETURN(std::string text, common::ReadFile(path));
    ASSIGN_OR_RETURN(nlohmann::json json, ParseJson(text, kAliasesFile));
    for (const auto& [alias, target] : json.items()) {
      loaded[alias] = AliasTarget{target.value("name", ""), target.value("version", int64_t{0})};
    }
  }
  aliases_ = std::move(loaded);
  aliases_stamp_ = stamp;
  return absl::OkStatus();
}

std::vector<int64_t> ModelStore::Versions(const std::string& name) const {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_ + "/" + name, ec)) {
    int64_t version = 0;
    if (entry.is_directory() && absl::SimpleAtoi(entry.path().filename().string(), &version) &&
        version > 0) {
      versions.push_back(version);
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

absl::StatusOr<StoredVersion> ModelStore::ReadVersion(const std::string& name,
                                                      int64_t version) const {
  const std::string dir = absl::StrCat(root_, "/", name, "/", version);
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

std::vector<StoredVersion> ModelStore::List() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name[0] != '.') names.push_back(name);  // no tombstones
  }
  std::sort(names.begin(), names.end());
  std::vector<StoredVersion> out;
  for (const auto& name : names) {
    for (int64_t version : Versions(name)) {
      auto stored = ReadVersion(name, version);
      if (stored.ok()) {
        out.push_back(std::move(*stored));
      } else {
        LOG(WARNING) << "skipping model " << name << " v" << version << ": " << stored.status();
      }
    }
  }
  return out;
}

absl::StatusOr<StoredVersion> ModelStore::Get(const std::string& name, int64_t version) const {
  RETURN_IF_ERROR(ValidateModelName(name, "model.name"));
  const std::vector<int64_t> versions = Versions(name);
  if (versions.empty()) return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
  if (version == 0) version = versions.back();
  if (!std::binary_search(versions.begin(), versions.end(), version)) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", version));
  }
  return ReadVersion(name, version);
}

absl::StatusOr<StoredVersion> ModelStore::AddVersion(const std::string& name,
                                                     const std::string& checkpoint_bytes) {
  RETURN_IF_ERROR(ValidateModelName(name, "name"));
  // Parse before storing: a checkpoint that does not load is never registered.
  ASSIGN_OR_RETURN(model::LoadedCheckpoint parsed, model::ParseCheckpoint(checkpoint_bytes));
  std::lock_guard<std::mutex> lock(mu_);
  const std::vector<int64_t> versions = Versions(name);
  int64_t version = std::max(versions.empty() ? 0 : versions.back(), HighestDeleted(name)) + 1;
  const std::string model_dir = root_ + "/" + name;
  const std::string tmp_dir = absl::StrCat(model_dir, "/", TempDirName());
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  nlohmann::json meta = {{"config", model::ToJson(parsed.info.config)},
                         {"metadata", parsed.info.metadata},
                         {"checkpoint_bytes", static_cast<int64_t>(checkpoint_bytes.size())},
                         {"checkpoint_sha256", common::Sha256Hex(checkpoint_bytes)},
                         {"created_unix_seconds", now}};
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
  return ReadVersion(name, version);
}

std::map<std::string, AliasTarget> ModelStore::Aliases() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status s = RefreshAliasesLocked(); !s.ok()) {
    LOG(WARNING) << "keeping the previous aliases: " << s;
  }
  return aliases_;
}

absl::Status ModelStore::SetAlias(const std::string& alias, const AliasTarget& target) {
  RETURN_IF_ERROR(ValidateModelName(alias, "alias"));
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(RefreshAliasesLocked());
  auto updated = aliases_;
  updated[alias] = target;
  nlohmann::json json = nlohmann::json::object();
  for (const auto& [name, t] : updated) json[name] = {{"name", t.name}, {"version", t.version}};
  RETURN_IF_ERROR(common::WriteFileAtomically(root_ + "/" + kAliasesFile, json.dump(2)));
  aliases_stamp_ = {-1, -1};  // re-read (and re-stamp) on next use
  return RefreshAliasesLocked();
}

}  // namespace segserve::registry

namespace segserve::registry {

int64_t ModelStore::HighestDeleted(const std::string& name) const {
  auto text = common::ReadFile(absl::StrCat(root_, "/", name, "/", kHighestFile));
  int64_t highest = 0;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &highest)) return 0;
  return highest;
}

absl::StatusOr<std::vector<StoredVersion>> ModelStore::PlanDelete(const std::string& name,
                                                                  int64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  return PlanDeleteLocked(name, version);
}

absl::StatusOr<std::vector<StoredVersion>> ModelStore::PlanDeleteLocked(const std::string& name,
                                                                        int64_t version) const {
  RETURN_IF_ERROR(ValidateModelName(name, "name"));
  if (version < 1 && version != kAllVersions) {
    return absl::InvalidArgumentError("version: must be >= 1 (or every version)");
  }
  const std::vector<int64_t> versions = Versions(name);
  if (versions.empty()) return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
  if (version != kAllVersions && !std::binary_search(versions.begin(), versions.end(), version)) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", version));
  }
  if (absl::Status s = RefreshAliasesLocked(); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot check the aliases before deleting: ", s.message()));
  }
  std::vector<std::string> blocking;
  for (const auto& [alias, target] : aliases_) {
    if (target.name != name) continue;
    if (version == kAllVersions) {
      blocking.push_back(absl::StrCat("'", alias, "' -> ", name,
                                      target.version ? absl::StrCat(":", target.version) : ""));
    } else if (target.version == version) {
      blocking.push_back(absl::StrCat("'", alias, "' -> ", name, ":", version));
    } else if (target.version == 0 && version == versions.back()) {
      blocking.push_back(
          absl::StrCat("'", alias, "' -> ", name, " (its newest version, ", version, ")"));
    }
  }
  if (!blocking.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model '", name, "'", version == kAllVersions ? "" : absl::StrCat(" version ", version),
        " is the target of alias ", absl::StrJoin(blocking, ", alias "),
        "; point the alias at another model (Models.SetAlias) first"));
  }
  std::vector<StoredVersion> planned;
  for (int64_t v : versions) {
    if (version != kAllVersions && v != version) continue;
    absl::StatusOr<StoredVersion> stored = ReadVersion(name, v);
    if (stored.ok()) {
      planned.push_back(std::move(*stored));
    } else {
      // A broken version (unreadable meta.json) can still be deleted.
      StoredVersion broken;
      broken.name = name;
      broken.version = v;
      broken.disk_bytes = common::DirectoryBytes(absl::StrCat(root_, "/", name, "/", v));
      planned.push_back(std::move(broken));
    }
  }
  return planned;
}

absl::StatusOr<std::vector<StoredVersion>> ModelStore::Delete(const std::string& name,
                                                              int64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(std::vector<StoredVersion> planned, PlanDeleteLocked(name, version));
  const std::string model_dir = absl::StrCat(root_, "/", name);
  if (version != kAllVersions) {
    // Remember the number before it disappears, so it is never handed out again.
    const int64_t highest = std::max(HighestDeleted(name), version);
    RETURN_IF_ERROR(common::WriteFileAtomically(absl::StrCat(model_dir, "/", kHighestFile),
                                                absl::StrCat(highest)));
  }
  std::vector<StoredVersion> deleted;
  for (StoredVersion& stored : planned) {
    absl::StatusOr<int64_t> removed =
        common::RemoveDirectoryDurably(absl::StrCat(model_dir, "/", stored.version));
    if (!removed.ok()) {
      return absl::Status(
          removed.status().code(),
          absl::StrCat("deleting model ", name, " v", stored.version, " failed after deleting ",
                       deleted.size(), " version(s): ", removed.status().message()));
    }
    LOG(INFO) << "deleted model " << name << " v" << stored.version << " (" << *removed
              << " bytes)";
    deleted.push_back(std::move(stored));
  }
  if (version == kAllVersions) {
    // Nothing of the name is left but, perhaps, .highest_version: the name starts afresh.
    std::error_code ec;
    fs::remove(absl::StrCat(model_dir, "/", kHighestFile), ec);
    fs::remove(model_dir, ec);  // fails harmlessly when a writer just created a temporary
  }
  return deleted;
}

}  // namespace segserve::registry
