#include "server/registry/model_name.h"

#include "absl/strings/str_cat.h"

namespace segserve::registry {

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

}  // namespace segserve::registry
