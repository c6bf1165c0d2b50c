#include "server/model/torch_status.h"

#include <c10/util/Exception.h>

#include <new>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/log.h"

namespace segserve::model {
namespace {

// c10 messages carry a C++ backtrace after the first line; keep the first line only.
std::string FirstLine(const char* what) {
  std::string text(what);
  if (size_t pos = text.find('\n'); pos != std::string::npos) text.resize(pos);
  return text;
}

}  // namespace

absl::Status StatusFromException(const std::exception& e, std::string_view context) {
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(std::string(context), ": out of memory"));
  }
  const c10::Error* c10_error = dynamic_cast<const c10::Error*>(&e);
  const std::string message =
      c10_error != nullptr ? FirstLine(c10_error->what_without_backtrace()) : FirstLine(e.what());
  if (absl::StrContains(message, "out of memory") ||
      absl::StrContains(message, "can't allocate memory")) {
    return absl::ResourceExhaustedError(
        absl::StrCat(std::string(context), ": out of memory: ", message));
  }
  if (dynamic_cast<const c10::IndexError*>(&e) != nullptr ||
      dynamic_cast<const c10::ValueError*>(&e) != nullptr ||
      dynamic_cast<const c10::TypeError*>(&e) != nullptr || absl::StrContains(message, "size") ||
      absl::StrContains(message, "shape")) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(context), ": ", message));
  }
  LOG(ERROR) << context << ": " << message;
  return absl::InternalError(absl::StrCat(std::string(context), ": ", message));
}

}  // namespace segserve::model
