// DatasetUploads::RemoveStagingDirectories: what a server start removes of uploads that
// no process is receiving any more. Split from upload.cc.
#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "server/common/log.h"
#include "server/data/upload.h"

namespace segserve::data {
namespace fs = std::filesystem;

namespace {

// The newest modification time of `dir` and everything in it: when an upload last wrote.
fs::file_time_type NewestWrite(const fs::path &dir) {
  std::error_code ec;
  fs::file_time_type newest = fs::last_write_time(dir, ec);
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    std::error_code time_ec;
    const fs::file_time_type t = fs::last_write_time(it->path(), time_ec);
    if (!time_ec && t > newest) newest = t;
  }
  return newest;
}

}  // namespace

int DatasetUploads::RemoveStagingDirectories(const std::string &datasets_dir,
                                             std::chrono::seconds min_idle) {
  int removed = 0;
  std::error_code ec;
  std::vector<fs::path> stale;
  const fs::file_time_type cutoff = fs::file_time_type::clock::now() - min_idle;
  for (const auto &entry : fs::directory_iterator(datasets_dir, ec)) {
    if (!absl::StartsWith(entry.path().filename().string(), kUploadStagingPrefix)) continue;
    // Another replica's upload in flight on a shared volume is younger: kept.
    if (min_idle.count() > 0 && NewestWrite(entry.path()) > cutoff) continue;
    stale.push_back(entry.path());
  }
  for (const fs::path &path : stale) {
    std::error_code remove_ec;
    fs::remove_all(path, remove_ec);
    if (remove_ec) {
      LOG(WARNING) << "upload: cannot remove " << path << ": " << remove_ec.message();
    } else {
      ++removed;
    }
  }
  if (removed > 0) LOG(INFO) << "removed " << removed << " unfinished upload(s)";
  return removed;
}

}  // namespace segserve::data
