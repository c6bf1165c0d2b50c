#include "server/registry/follower.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/log.h"

namespace segserve::registry {
namespace {

std::string Key(const std::string& name, int64_t version) {
  return absl::StrCat(name, ":", version);
}

}  // namespace

RegistryFollower::RegistryFollower(ModelRegistry& registry, FollowerOptions options)
    : registry_(registry), options_(std::move(options)) {}

RegistryFollower::~RegistryFollower() { Stop(); }

void RegistryFollower::Start() {
  absl::MutexLock lock(&mu_);
  if (stopping_ || thread_.joinable() || options_.interval <= absl::ZeroDuration()) return;
  thread_ = std::thread([this] { Loop(); });
}

void RegistryFollower::Stop() {
  std::thread thread;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    thread = std::move(thread_);
  }
  cv_.SignalAll();
  if (thread.joinable()) thread.join();
}

void RegistryFollower::Loop() {
  while (true) {
    absl::Status synced = SyncOnce();
    if (!synced.ok()) LOG(WARNING) << "registry follower: " << synced.message();
    absl::MutexLock lock(&mu_);
    const absl::Time until = absl::Now() + options_.interval;
    while (!stopping_) {
      if (cv_.WaitWithDeadline(&mu_, until)) break;  // timed out
    }
    if (stopping_) return;
  }
}

absl::Status RegistryFollower::SyncOnce() {
  ModelStore& store = registry_.store();
  if (absl::Status refreshed = store.Refresh(); !refreshed.ok()) return refreshed;
  const std::vector<StoredVersion> stored = store.List();  // sorted by name, then version
  std::map<std::string, int64_t> newest;
  for (const StoredVersion& v : stored) newest[v.name] = v.version;
  const AliasTable aliases = store.Aliases();

  // What the followed references want loaded.
  std::set<std::string> wanted;
  auto want_alias = [&](const AliasTarget& target) {
    auto it = newest.find(target.name);
    if (it == newest.end()) return;
    wanted.insert(Key(target.name, target.version > 0 ? target.version : it->second));
  };
  if (options_.follow.empty()) {
    for (const auto& [name, version] : newest) wanted.insert(Key(name, version));
    for (const auto& [alias, target] : aliases) want_alias(target);
  } else {
    for (const std::string& ref : options_.follow) {
      auto alias = aliases.find(ref);
      if (alias != aliases.end()) {
        want_alias(alias->second);
      } else if (auto it = newest.find(ref); it != newest.end()) {
        wanted.insert(Key(ref, it->second));
      }
    }
  }
  std::set<std::string> loaded;
  for (const ModelStatus& status : registry_.List()) {
    if (status.state == LoadState::kLoaded) {
      loaded.insert(Key(status.stored.name, status.stored.version));
    }
  }
  if (!first_pass_done_) {
    managed_ = loaded;  // what the start-up loaded is ours to replace
    first_pass_done_ = true;
  }

  std::vector<std::string> errors;
  for (const StoredVersion& v : stored) {
    const std::string key = Key(v.name, v.version);
    if (!wanted.count(key) || loaded.count(key) || failed_.count(key)) continue;
    absl::StatusOr<ModelStatus> result = registry_.Load(v.name, v.version);
    if (result.ok() && result->state == LoadState::kLoaded) {
      LOG(INFO) << "registry follower: loaded " << key;
      loaded.insert(key);
      managed_.insert(key);
    } else {
      failed_.insert(key);
      const std::string why = result.ok() ? result->load_error : result.status().ToString();
      errors.push_back(absl::StrCat(key, " did not load (kept the version serving now): ", why));
    }
  }
  // The alias table requests resolve through: a moved alias switches once its new target
  // is loaded; until then (or when it failed to load) it keeps its old, loaded target.
  const std::shared_ptr<const AliasTable> before = registry_.ServedAliases();
  auto served = std::make_shared<AliasTable>();
  for (const auto& [alias, target] : aliases) {
    if (!registry_.IsLoaded(target) && before != nullptr) {
      auto old = before->find(alias);
      if (old != before->end() && registry_.IsLoaded(old->second)) {
        (*served)[alias] = old->second;
        continue;
      }
    }
    (*served)[alias] = target;
  }
  registry_.SetServedAliases(served);
  std::set<std::string> keep = wanted;  // versions a served alias pins stay loaded
  for (const auto& [alias, target] : *served) {
    if (target.version > 0) keep.insert(Key(target.name, target.version));
  }

  // Unload what nothing wants any more, but only once every wanted version of that model
  // is in (a failed load keeps its predecessor serving).
  std::set<std::string> names_complete;
  for (const auto& [name, version] : newest) {
    bool complete = true;
    for (const std::string& key : wanted) {
      if (key.rfind(name + ":", 0) == 0 && !loaded.count(key)) complete = false;
    }
    if (complete) names_complete.insert(name);
  }
  for (const StoredVersion& v : stored) {
    const std::string key = Key(v.name, v.version);
    if (!loaded.count(key) || keep.count(key) || !managed_.count(key)) continue;
    if (!names_complete.count(v.name)) continue;
    if (!options_.follow.empty() && newest.count(v.name) &&
        std::none_of(wanted.begin(), wanted.end(),
                     [&](const std::string& w) { return w.rfind(v.name + ":", 0) == 0; })) {
      continue;  // a model no followed reference points at: not ours to unload
    }
    absl::StatusOr<ModelStatus> unloaded = registry_.Unload(v.name, v.version);
    if (unloaded.ok()) {
      LOG(INFO) << "registry follower: unloaded " << key << " (superseded)";
      managed_.erase(key);
    }
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrJoin(errors, "; "));
}

}  // namespace segserve::registry
