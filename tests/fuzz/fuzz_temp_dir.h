// File: tests/fuzz/fuzz_temp_dir.h — one scratch directory per fuzzer process, removed at
// exit, for targets whose code under test reads the file system.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace segserve::fuzz {

// Creates $TMPDIR/segserve_fuzz_<tag>_XXXXXX once; aborts if it cannot.
inline const std::string& TempDir(const char* tag) {
  // Never destroyed: the atexit cleanup runs after the destructors of statics constructed
  // later, so a static std::string would already be gone (a use-after-free at exit).
  static const std::string* const dir = [tag] {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base ? base : "/tmp") + "/segserve_fuzz_" + tag + "_XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    auto* path = new std::string(pattern);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(TempDir(""), ec);
    });
    return path;
  }();
  return *dir;
}

}  // namespace segserve::fuzz
