// File: server/model/torch_status.h — turns LibTorch exceptions into absl::Status, so that no
// c10::Error leaves server/model/.
#pragma once

#include <exception>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace segserve::model {

// Out of memory -> ResourceExhausted; shape/argument errors -> InvalidArgument; the rest ->
// Internal. `context` says what was being done ("forward", "loading state dict").
absl::Status StatusFromException(const std::exception& e, std::string_view context);

// Runs `fn` (returning absl::Status or absl::StatusOr<T>) and converts any exception.
template <typename Fn>
auto CallTorch(std::string_view context, Fn&& fn) -> decltype(fn()) {
  try {
    return std::forward<Fn>(fn)();
  } catch (const std::exception& e) {
    return StatusFromException(e, context);
  }
}

}  // namespace segserve::model
