// File: server/registry/add_once.h — exactly-once registration for writers that retry: a
// version carries a key in its metadata (a training job's id, an import's id), and a
// writer that finds a version with its key takes that one instead of adding another. Two
// writers racing with the same key (a paused run and its successor, a client's retry on
// another replica) may both add; both then see both versions and keep the lower one, the
// other is deleted by whoever added it.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/registry/model_store.h"

namespace segserve::registry {

// The lowest version of `name` whose metadata[key] is the string `value`, after a Refresh
// (the earlier writer may have been another replica). nullopt: none.
absl::StatusOr<std::optional<StoredVersion>> FindVersionWith(ModelStore& store,
                                                             const std::string& name,
                                                             const std::string& key,
                                                             const std::string& value);

struct AddedOnce {
  StoredVersion version;
  bool existed = false;  // an earlier writer with the key registered it
};

// `bytes` (a checkpoint whose metadata holds key: value) as a version of `name`, unless a
// version with the key exists. `before_add` (may be empty) runs right before AddVersion, e.g.
// a lease check; its error is returned and nothing is added.
absl::StatusOr<AddedOnce> AddVersionOnce(ModelStore& store, const std::string& name,
                                         const std::string& bytes, const std::string& key,
                                         const std::string& value,
                                         const std::function<absl::Status()>& before_add = {});

}  // namespace segserve::registry
