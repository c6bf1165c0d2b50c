// File: server/common/log.h — levelled logging to stderr with an optional request id.
// Debian's Abseil 20220623 has no absl/log, so this is the project's one logger.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace segserve::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Parses "debug", "info", "warning", "error" (case-insensitive). Returns false on others.
bool ParseLogLevel(std::string_view text, LogLevel* level);
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
bool LogEnabled(LogLevel level);

// One log line; written atomically to stderr when destroyed.
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Turns the streamed expression into void so LOG works as a statement anywhere
// (including an unbraced if) without dangling-else ambiguity.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace segserve::common

#define SEGSERVE_LOG_LEVEL_DEBUG ::segserve::common::LogLevel::kDebug
#define SEGSERVE_LOG_LEVEL_INFO ::segserve::common::LogLevel::kInfo
#define SEGSERVE_LOG_LEVEL_WARNING ::segserve::common::LogLevel::kWarning
#define SEGSERVE_LOG_LEVEL_ERROR ::segserve::common::LogLevel::kError

// LOG(INFO) << "text"; cheap when the level is disabled.
// LibTorch brings glog's LOG; torch headers always come first (the precompiled header is
// force-included), so replacing the macro here affects segserve code only.
#ifdef LOG
#undef LOG
#endif
#define LOG(level)                                                                      \
  !::segserve::common::LogEnabled(SEGSERVE_LOG_LEVEL_##level)                           \
      ? (void)0                                                                         \
      : ::segserve::common::LogVoidify() &                                              \
            ::segserve::common::LogMessage(SEGSERVE_LOG_LEVEL_##level, __FILE__, __LINE__) \
                .stream()
