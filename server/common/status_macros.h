// File: server/common/status_macros.h — early-return helpers for absl::Status code
// (Debian's Abseil 20220623 ships none).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SEGSERVE_STATUS_CONCAT_INNER_(a, b) a##b
#define SEGSERVE_STATUS_CONCAT_(a, b) SEGSERVE_STATUS_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): evaluates expr (absl::Status) and returns it when not OK.
#define RETURN_IF_ERROR(expr)                       \
  do {                                              \
    ::absl::Status segserve_status_ = (expr);       \
    if (!segserve_status_.ok()) return segserve_status_; \
  } while (false)

// ASSIGN_OR_RETURN(lhs, expr): evaluates expr (absl::StatusOr<T>); on error returns the
// status, otherwise moves the value into lhs (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, expr) \
  SEGSERVE_ASSIGN_OR_RETURN_IMPL_(SEGSERVE_STATUS_CONCAT_(statusor_, __LINE__), lhs, expr)

#define SEGSERVE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = std::move(statusor).value()
