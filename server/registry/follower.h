// File: server/registry/follower.h — keeps a serving replica's loaded versions in step with
// a model store that other processes write (the shared data directory of a distributed
// deployment: trainers register versions, anyone moves aliases). Every `interval` it
// rescans the store and
//   - loads the version each followed reference wants: the newest stored version of a
//     followed model name, the target of a followed alias (its pinned version, or the
//     newest of its model), every alias when nothing is listed;
//   - publishes the alias table requests resolve through (ModelRegistry::SetServedAliases):
//     an alias moved elsewhere switches only once its new target is loaded, so requests
//     through it never see an unloaded version while the load runs;
//   - once that version is loaded (Resolve of the name now answers it: version 0 = newest
//     loaded), unloads the versions it manages that nothing wants or serves any more.
//     Requests that resolved an old version finish on it (ModelRegistry keeps it alive by
//     shared_ptr).
// It manages what it loaded and what was loaded when it started; a version an operator
// loads later by hand is left alone. A version that fails to load (a missing or corrupted
// checkpoint: the registry records why, Models.List shows it) is not retried until a newer
// version or another target appears, and the old version keeps serving.
#pragma once

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/registry/registry.h"

namespace segserve::registry {

struct FollowerOptions {
  // Model names and aliases to follow; empty = every model (newest version) and every alias.
  std::vector<std::string> follow;
  absl::Duration interval = absl::Seconds(2);
};

class RegistryFollower {
 public:
  RegistryFollower(ModelRegistry& registry, FollowerOptions options);
  ~RegistryFollower();  // Stop().
  // Starts the background thread (interval > 0); its first pass runs at once. Once.
  void Start();
  // Stops the thread; loaded versions stay loaded. Idempotent.
  void Stop();
  RegistryFollower(const RegistryFollower&) = delete;
  RegistryFollower& operator=(const RegistryFollower&) = delete;

  // One pass (also what the thread runs). Returns the load errors of this pass, joined.
  absl::Status SyncOnce();

 private:
  void Loop();

  ModelRegistry& registry_;
  const FollowerOptions options_;
  absl::Mutex mu_;
  absl::CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool first_pass_done_ = false;   // Only the sync thread (or a test calling SyncOnce).
  std::set<std::string> managed_;  // "name:version" this follower may unload
  std::set<std::string> failed_;   // "name:version" whose load failed: not retried
  std::thread thread_;
};

}  // namespace segserve::registry
