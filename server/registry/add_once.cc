#include "server/registry/add_once.h"

#include "server/common/log.h"
#include "server/common/status_macros.h"

namespace segserve::registry {

absl::StatusOr<std::optional<StoredVersion>> FindVersionWith(ModelStore& store,
                                                             const std::string& name,
                                                             const std::string& key,
                                                             const std::string& value) {
  RETURN_IF_ERROR(store.Refresh());
  for (StoredVersion& version : store.List()) {  // sorted: lowest version first
    if (version.name != name || !version.metadata.is_object()) continue;
    const auto it = version.metadata.find(key);
    if (it != version.metadata.end() && it->is_string() && it->get<std::string>() == value) {
      return std::optional<StoredVersion>(std::move(version));
    }
  }
  return std::optional<StoredVersion>();
}

absl::StatusOr<AddedOnce> AddVersionOnce(ModelStore& store, const std::string& name,
                                         const std::string& bytes, const std::string& key,
                                         const std::string& value,
                                         const std::function<absl::Status()>& before_add) {
  ASSIGN_OR_RETURN(std::optional<StoredVersion> earlier, FindVersionWith(store, name, key, value));
  if (earlier.has_value()) {
    LOG(WARNING) << name << " v" << earlier->version << " was registered before for " << key
                 << " " << value << "; not registering it again";
    return AddedOnce{*std::move(earlier), true};
  }
  if (before_add) RETURN_IF_ERROR(before_add());
  ASSIGN_OR_RETURN(StoredVersion added, store.AddVersion(name, bytes));
  // Another writer with the same key may have added at the same time: keep the lower.
  ASSIGN_OR_RETURN(std::optional<StoredVersion> first, FindVersionWith(store, name, key, value));
  if (first.has_value() && first->version != added.version) {
    LOG(WARNING) << name << " v" << first->version << " was registered by another writer for "
                 << key << " " << value << "; removing v" << added.version;
    auto removed = store.Delete(name, added.version);
    if (!removed.ok()) LOG(WARNING) << "cannot remove the duplicate: " << removed.status();
    return AddedOnce{*std::move(first), true};
  }
  return AddedOnce{std::move(added), false};
}

}  // namespace segserve::registry
