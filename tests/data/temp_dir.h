// File: tests/data/temp_dir.h — a scratch directory removed when the test ends.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace segserve::data::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/segserve_data_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }
  std::string operator/(const std::string &rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

}  // namespace segserve::data::testing
