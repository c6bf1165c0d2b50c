// File: server/registry/registry.h — which model versions are loaded and servable, how
// references (name, name+version, alias) resolve, and hot load/unload without downtime:
// a new version is loaded beside the old one and swapped in only when ready; requests
// hold a shared_ptr to the version they resolved, so unloading never breaks them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "server/metrics/metrics.h"
#include "server/registry/model_store.h"
#include "server/registry/precision.h"

namespace segserve::model {
class ServableModel;
}

namespace segserve::registry {

enum class LoadState { kUnloaded, kLoading, kLoaded, kFailed };

// A loaded, servable model version. Immutable once published.
struct LoadedModel {
  StoredVersion stored;
  std::shared_ptr<model::ServableModel> servable;
  bool bfloat16 = false;  // served in bf16 (see precision.h), else fp32
  std::string key() const { return stored.name + ":" + std::to_string(stored.version); }
};

struct ModelStatus {
  StoredVersion stored;
  LoadState state = LoadState::kUnloaded;
  std::string load_error;
  std::vector<std::string> aliases;
  std::string precision;  // "fp32" or "bf16" while loaded, else empty
};

// The seam between the registry and LibTorch: builds a servable model from a stored
// checkpoint. Production: ServableModel::CreateFromCheckpoint.
class ModelLoader {
 public:
  virtual ~ModelLoader() = default;
  virtual absl::StatusOr<std::shared_ptr<model::ServableModel>> Load(
      const StoredVersion& stored) = 0;
};

class ModelRegistry {
 public:
  ModelRegistry(ModelStore& store, ModelLoader& loader, metrics::Metrics& metrics);

  // Resolves a reference: `name` may be an alias; version 0 = newest loaded version. No
  // file-system call: the store's tables and the loaded versions are in memory, and no
  // lock taken here is held across a write (AddVersion, SetAlias) or a model load.
  // NotFound for unknown names/versions, FailedPrecondition when it exists but is not
  // loaded (with the load error when its load failed, e.g. a checksum mismatch).
  // InvalidArgument for malformed names (field "model.name").
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Resolve(const std::string& name,
                                                             int64_t version) const;

  // Loads a stored version (0 = newest stored) and publishes it. Blocking: call from a
  // worker thread, not a gRPC thread. While loading, the previous versions keep serving;
  // a failed load leaves them untouched and records the error (state kFailed).
  absl::StatusOr<ModelStatus> Load(const std::string& name, int64_t version);
  // Unpublishes a version (0 = newest loaded); in-flight requests finish on their
  // shared_ptr. FailedPrecondition when not loaded.
  absl::StatusOr<ModelStatus> Unload(const std::string& name, int64_t version);

  // Deletes a stored version (version >= 1) or every version of `name`
  // (ModelStore::kAllVersions). `name` must be a model name, not an alias (NotFound saying
  // so). Refused with FailedPrecondition naming the alias when one points at it (see
  // ModelStore::PlanDelete). Loaded versions are unpublished first: requests holding their
  // shared_ptr finish on it, later Resolve calls get NotFound; a Load racing with the
  // delete is not published. Blocking (removes files): call from a worker thread.
  absl::StatusOr<std::vector<StoredVersion>> Delete(const std::string& name, int64_t version);

  // Every stored version with its state, and the alias table.
  std::vector<ModelStatus> List() const;
  absl::StatusOr<ModelStatus> Get(const std::string& name, int64_t version) const;
  // The version's checkpoint as a local file (ModelStore::CheckpointFile): blocking I/O.
  absl::StatusOr<std::string> CheckpointFile(const StoredVersion& stored) {
    return store_.CheckpointFile(stored);
  }
  std::map<std::string, AliasTarget> Aliases() const { return store_.Aliases(); }
  // Points `alias` at an existing model (NotFound otherwise).
  absl::Status SetAlias(const std::string& alias, const AliasTarget& target);

  // Loads the newest version of every model in the store (or only `names` when not
  // empty). Returns the errors joined; the server keeps serving what loaded.
  absl::Status LoadAtStartup(const std::vector<std::string>& names);

  ModelStore& store() { return store_; }

  // Follow mode (RegistryFollower): requests resolve aliases through `aliases` instead of
  // the store's table, so an alias another process moved keeps answering with its old,
  // loaded target until the follower has loaded the new one. Null (default): the store's
  // table. SetAlias through this registry updates it at once when the new target is loaded.
  void SetServedAliases(std::shared_ptr<const AliasTable> aliases);
  std::shared_ptr<const AliasTable> ServedAliases() const;
  // Whether `target` resolves to a loaded version now (version 0: any version of the name).
  bool IsLoaded(const AliasTarget& target) const;

  // Called when a version is loaded (before requests can resolve it; loaded = true) or
  // unloaded (false), e.g. to install the model's drift reference. Must not call back into
  // the registry. Set before serving.
  void SetListener(std::function<void(const LoadedModel&, bool loaded)> listener) {
    listener_ = std::move(listener);
  }

 private:
  // Validates a reference's name and resolves aliases to a model name and version (the
  // alias's version wins when set). InvalidArgument naming "model.name".
  absl::StatusOr<AliasTarget> ResolveRef(const std::string& name, int64_t version) const;
  // The store's entry, refreshing the store from disk first when it is unknown (control
  // path only: Load and SetAlias; never Resolve).
  absl::StatusOr<StoredVersion> GetFresh(const std::string& name, int64_t version) const;
  ModelStatus StatusOf(const StoredVersion& stored) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetLoadedGauge(const StoredVersion& stored, bool loaded);

  ModelStore& store_;
  ModelLoader& loader_;
  std::function<void(const LoadedModel&, bool)> listener_;
  prometheus::Family<prometheus::Gauge>& loaded_gauge_;
  mutable absl::Mutex mu_;
  // name -> version -> loaded model.
  std::map<std::string, std::map<int64_t, std::shared_ptr<const LoadedModel>>> loaded_
      ABSL_GUARDED_BY(mu_);
  // Versions being deleted ("name:version"): a load finishing meanwhile is not published.
  std::set<std::string> deleting_ ABSL_GUARDED_BY(mu_);
  // "name:version" -> state for versions that are loading or failed.
  std::map<std::string, std::pair<LoadState, std::string>> transient_ ABSL_GUARDED_BY(mu_);
  mutable absl::Mutex served_aliases_mu_;
  std::shared_ptr<const AliasTable> served_aliases_ ABSL_GUARDED_BY(served_aliases_mu_);
};

// The production ModelLoader.
class CheckpointModelLoader : public ModelLoader {
 public:
  struct Options {
    std::string device = "cpu";
    int intra_op_threads = 0;
    PrecisionPolicy precision;  // per version: ChoosePrecision of its metadata
  };
  explicit CheckpointModelLoader(Options options) : options_(std::move(options)) {}
  absl::StatusOr<std::shared_ptr<model::ServableModel>> Load(const StoredVersion& stored) override;

 private:
  Options options_;
};

const char* LoadStateName(LoadState state);

}  // namespace segserve::registry
