// File: server/data/absl_compat.h — Debian's Abseil (20220623) has its own
// absl::string_view, distinct from std::string_view; this bridges the two for
// StrCat, SimpleAtoi and friends. Private to server/data.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace segserve::data {

inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace segserve::data
