// File: server/registry/model_name.h — what a model, alias or data-set name may be. Torch-free
// (the request fuzzer compiles it on its own).
#pragma once

#include <string>

#include "absl/status/status.h"

namespace segserve::registry {

// 1..128 characters of [A-Za-z0-9._-], not starting with '.'; InvalidArgument naming `field`.
absl::Status ValidateModelName(const std::string& name, const std::string& field);

}  // namespace segserve::registry
