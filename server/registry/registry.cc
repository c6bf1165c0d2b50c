#include "server/registry/registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "prometheus/gauge.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/model/servable_model.h"

namespace segserve::registry {

const char* LoadStateName(LoadState state) {
  switch (state) {
    case LoadState::kUnloaded: return "UNLOADED";
    case LoadState::kLoading: return "LOADING";
    case LoadState::kLoaded: return "LOADED";
    case LoadState::kFailed: return "FAILED";
  }
  return "UNKNOWN";
}

absl::StatusOr<std::shared_ptr<model::ServableModel>> CheckpointModelLoader::Load(
    const StoredVersion& stored) {
  model::ServeOptions options;
  options.device = options_.device;
  options.intra_op_threads = options_.intra_op_threads;
  const PrecisionChoice precision = ChoosePrecision(options_.precision, stored.metadata);
  options.bfloat16 = precision.bfloat16;
  LOG(INFO) << "model " << stored.name << ":" << stored.version << " serves in "
            << PrecisionName(precision.bfloat16) << " (" << precision.reason << ")";
  ASSIGN_OR_RETURN(std::unique_ptr<model::ServableModel> servable,
                   model::ServableModel::CreateFromCheckpoint(stored.checkpoint_path, options));
  return std::shared_ptr<model::ServableModel>(std::move(servable));
}

ModelRegistry::ModelRegistry(ModelStore& store, ModelLoader& loader, metrics::Metrics& metrics)
    : store_(store),
      loader_(loader),
      loaded_gauge_(prometheus::BuildGauge()
                        .Name("segserve_model_loaded")
                        .Help("1 when the model version is loaded and serving, else 0.")
                        .Register(*metrics.registry())) {}

void ModelRegistry::SetLoadedGauge(const StoredVersion& stored, bool loaded) {
  loaded_gauge_.Add({{"model", stored.name}, {"version", std::to_string(stored.version)}})
      .Set(loaded ? 1 : 0);
}

absl::StatusOr<AliasTarget> ModelRegistry::ResolveRef(const std::string& name,
                                                      int64_t version) const {
  RETURN_IF_ERROR(ValidateModelName(name, "model.name"));
  AliasTarget ref{name, version};
  std::shared_ptr<const AliasTable> aliases = ServedAliases();
  if (aliases == nullptr) aliases = store_.SharedAliases();
  auto it = aliases->find(name);
  if (it == aliases->end()) return ref;
  ref.name = it->second.name;
  if (it->second.version != 0) ref.version = it->second.version;
  return ref;
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Resolve(
    const std::string& ref_name, int64_t ref_version) const {
  if (ref_version < 0) {
    return absl::InvalidArgumentError("model.version: must be >= 0 (0 = newest)");
  }
  ASSIGN_OR_RETURN(const AliasTarget ref, ResolveRef(ref_name, ref_version));
  const std::string& name = ref.name;
  int64_t version = ref.version;
  {
    absl::MutexLock lock(&mu_);
    auto it = loaded_.find(name);
    if (it != loaded_.end() && !it->second.empty()) {
      if (version == 0) return it->second.rbegin()->second;
      auto v = it->second.find(version);
      if (v != it->second.end()) return v->second;
    }
  }
  // Not loaded: tell NotFound from FailedPrecondition.
  auto stored = store_.Get(name, version);
  if (!stored.ok()) {
    if (name != ref_name) {
      return absl::NotFoundError(absl::StrCat("alias '", ref_name, "' points at '", name,
                                              "', which is not in the model store"));
    }
    return stored.status();
  }
  {
    // A version whose load failed (e.g. a checkpoint that fails its checksum) says why.
    absl::MutexLock lock(&mu_);
    auto t = transient_.find(absl::StrCat(name, ":", stored->version));
    if (t != transient_.end() && t->second.first == LoadState::kFailed) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model '", name, "' version ", stored->version, " failed to load: ", t->second.second));
    }
  }
  return absl::FailedPreconditionError(absl::StrCat("model '", name, "' version ",
                                                    stored->version,
                                                    " is not loaded (Models.Load loads it)"));
}

ModelStatus ModelRegistry::StatusOf(const StoredVersion& stored) const {
  ModelStatus status;
  status.stored = stored;
  auto it = loaded_.find(stored.name);
  if (it != loaded_.end()) {
    auto v = it->second.find(stored.version);
    if (v != it->second.end()) {
      status.state = LoadState::kLoaded;
      status.precision = std::string(PrecisionName(v->second->bfloat16));
    }
  }
  auto t = transient_.find(absl::StrCat(stored.name, ":", stored.version));
  if (t != transient_.end() && status.state != LoadState::kLoaded) {
    status.state = t->second.first;
    status.load_error = t->second.second;
  }
  for (const auto& [alias, target] : *store_.SharedAliases()) {
    if (target.name == stored.name && (target.version == 0 || target.version == stored.version)) {
      status.aliases.push_back(alias);
    }
  }
  return status;
}

absl::StatusOr<ModelStatus> ModelRegistry::Load(const std::string& ref_name, int64_t ref_version) {
  ASSIGN_OR_RETURN(const AliasTarget ref, ResolveRef(ref_name, ref_version));
  const std::string& name = ref.name;
  int64_t version = ref.version;
  ASSIGN_OR_RETURN(StoredVersion stored, GetFresh(name, version));
  const std::string key = absl::StrCat(stored.name, ":", stored.version);
  {
    absl::MutexLock lock(&mu_);
    transient_[key] = {LoadState::kLoading, ""};
  }
  LOG(INFO) << "loading model " << key;
  // The blob as a local file (fetched and verified for large objects, verified in place
  // for shared files): a missing or corrupted blob fails the load with the reason.
  absl::StatusOr<std::shared_ptr<model::ServableModel>> servable = absl::UnknownError("not loaded");
  if (absl::StatusOr<std::string> file = store_.CheckpointFile(stored); file.ok()) {
    stored.checkpoint_path = *file;
    servable = loader_.Load(stored);
  } else {
    servable = file.status();
  }
  auto loaded = std::make_shared<LoadedModel>();
  {
    absl::MutexLock lock(&mu_);
    if (!servable.ok()) {
      transient_[key] = {LoadState::kFailed, std::string(servable.status().message())};
      LOG(WARNING) << "loading model " << key << " failed: " << servable.status();
      return servable.status();
    }
    loaded->stored = stored;
    loaded->servable = std::move(*servable);
    loaded->bfloat16 = loaded->servable->options().bfloat16;
  }
  // The listener (drift reference) is ready before requests can resolve the version.
  if (listener_) listener_(*loaded, true);
  absl::MutexLock lock(&mu_);
  if (deleting_.count(key)) {
    transient_.erase(key);
    if (listener_) listener_(*loaded, false);
    return absl::NotFoundError(absl::StrCat("model ", key, " was deleted while it loaded"));
  }
  loaded_[stored.name][stored.version] = loaded;
  transient_.erase(key);
  SetLoadedGauge(stored, true);
  LOG(INFO) << "model " << key << " loaded";
  return StatusOf(stored);
}

absl::StatusOr<ModelStatus> ModelRegistry::Unload(const std::string& ref_name,
                                                  int64_t ref_version) {
  ASSIGN_OR_RETURN(const AliasTarget ref, ResolveRef(ref_name, ref_version));
  const std::string& name = ref.name;
  int64_t version = ref.version;
  absl::MutexLock lock(&mu_);
  auto it = loaded_.find(name);
  if (it == loaded_.end() || it->second.empty()) {
    RETURN_IF_ERROR(store_.Get(name, version).status());
    return absl::FailedPreconditionError(absl::StrCat("model '", name, "' is not loaded"));
  }
  if (version == 0) version = it->second.rbegin()->first;
  auto v = it->second.find(version);
  if (v == it->second.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", name, "' version ", version, " is not loaded"));
  }
  const std::shared_ptr<const LoadedModel> unloaded = v->second;
  const StoredVersion stored = unloaded->stored;
  it->second.erase(v);
  SetLoadedGauge(stored, false);
  LOG(INFO) << "model " << name << ":" << version << " unloaded";
  if (listener_) listener_(*unloaded, false);
  return StatusOf(stored);
}

absl::StatusOr<std::vector<StoredVersion>> ModelRegistry::Delete(const std::string& name,
                                                                 int64_t version) {
  RETURN_IF_ERROR(ValidateModelName(name, "name"));
  {
    const auto aliases = store_.Aliases();
    auto alias = aliases.find(name);
    if (alias != aliases.end() &&
        store_.Get(name, 0).status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat(
          "'", name, "' is an alias (-> ", alias->second.name,
          "), not a model; delete the model by its name, after pointing the alias elsewhere"));
    }
  }
  // Refuse early (aliases, unknown versions) before anything is unloaded; the store checks
  // again under its lock when it deletes.
  ASSIGN_OR_RETURN(std::vector<StoredVersion> planned, store_.PlanDelete(name, version));
  std::vector<std::shared_ptr<const LoadedModel>> unloaded;
  {
    absl::MutexLock lock(&mu_);
    auto it = loaded_.find(name);
    for (const StoredVersion& stored : planned) {
      deleting_.insert(absl::StrCat(name, ":", stored.version));
      if (it == loaded_.end()) continue;
      auto v = it->second.find(stored.version);
      if (v == it->second.end()) continue;
      unloaded.push_back(v->second);
      it->second.erase(v);
      SetLoadedGauge(stored, false);
    }
  }
  for (const auto& model : unloaded) {
    LOG(INFO) << "model " << model->key() << " unloaded before its delete";
    if (listener_) listener_(*model, false);
  }
  absl::StatusOr<std::vector<StoredVersion>> deleted = store_.Delete(name, version);
  absl::MutexLock lock(&mu_);
  for (const StoredVersion& stored : planned) {
    const std::string key = absl::StrCat(name, ":", stored.version);
    deleting_.erase(key);
    if (!deleted.ok()) continue;
    transient_.erase(key);
  }
  if (deleted.ok()) {
    for (const StoredVersion& stored : *deleted) {
      auto& gauge =
          loaded_gauge_.Add({{"model", stored.name}, {"version", std::to_string(stored.version)}});
      loaded_gauge_.Remove(&gauge);
    }
  }
  return deleted;
}

std::vector<ModelStatus> ModelRegistry::List() const {
  std::vector<StoredVersion> stored = store_.List();
  absl::MutexLock lock(&mu_);
  std::vector<ModelStatus> out;
  out.reserve(stored.size());
  for (const auto& s : stored) out.push_back(StatusOf(s));
  return out;
}

absl::StatusOr<ModelStatus> ModelRegistry::Get(const std::string& ref_name,
                                               int64_t ref_version) const {
  ASSIGN_OR_RETURN(const AliasTarget ref, ResolveRef(ref_name, ref_version));
  const std::string& name = ref.name;
  int64_t version = ref.version;
  ASSIGN_OR_RETURN(StoredVersion stored, store_.Get(name, version));
  absl::MutexLock lock(&mu_);
  return StatusOf(stored);
}

absl::StatusOr<StoredVersion> ModelRegistry::GetFresh(const std::string& name,
                                                      int64_t version) const {
  auto stored = store_.Get(name, version);
  if (stored.ok() || stored.status().code() != absl::StatusCode::kNotFound) return stored;
  // Perhaps another process (a training run, a tool) wrote it since the last refresh.
  if (absl::Status s = store_.Refresh(); !s.ok()) LOG(WARNING) << "model store refresh: " << s;
  return store_.Get(name, version);
}

absl::Status ModelRegistry::SetAlias(const std::string& alias, const AliasTarget& target) {
  RETURN_IF_ERROR(GetFresh(target.name, target.version).status());
  RETURN_IF_ERROR(store_.SetAlias(alias, target));
  absl::MutexLock lock(&served_aliases_mu_);
  if (served_aliases_ != nullptr && IsLoaded(target)) {
    auto served = std::make_shared<AliasTable>(*served_aliases_);
    (*served)[alias] = target;
    served_aliases_ = std::move(served);
  }
  return absl::OkStatus();
}

void ModelRegistry::SetServedAliases(std::shared_ptr<const AliasTable> aliases) {
  absl::MutexLock lock(&served_aliases_mu_);
  served_aliases_ = std::move(aliases);
}

std::shared_ptr<const AliasTable> ModelRegistry::ServedAliases() const {
  absl::MutexLock lock(&served_aliases_mu_);
  return served_aliases_;
}

bool ModelRegistry::IsLoaded(const AliasTarget& target) const {
  absl::MutexLock lock(&mu_);
  auto it = loaded_.find(target.name);
  if (it == loaded_.end() || it->second.empty()) return false;
  return target.version == 0 || it->second.count(target.version) > 0;
}

absl::Status ModelRegistry::LoadAtStartup(const std::vector<std::string>& names) {
  std::vector<std::string> targets = names;
  if (targets.empty()) {
    for (const auto& stored : store_.List()) {
      if (targets.empty() || targets.back() != stored.name) targets.push_back(stored.name);
    }
  }
  std::vector<std::string> errors;
  for (const auto& name : targets) {
    auto status = Load(name, 0);
    if (!status.ok()) errors.push_back(absl::StrCat(name, ": ", status.status().message()));
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrJoin(errors, "; "));
}

}  // namespace segserve::registry
