#include "server/common/dir_util.h"

#include <stdio.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/log.h"

namespace segserve::common {
namespace fs = std::filesystem;

absl::StatusOr<int64_t> RemoveDirectoryDurably(const std::string& path) {
  const fs::path target = fs::path(path).lexically_normal();
  const std::string parent =
      target.has_parent_path() ? target.parent_path().string() : std::string(".");
  std::error_code ec;
  if (!fs::is_directory(target, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such directory"));
  }
  const int64_t bytes = DirectoryBytes(target.string());
  const std::string tombstone = absl::StrCat(
      parent, "/", kTombstonePrefix, target.filename().string(), "-", std::random_device{}());
  if (::rename(target.c_str(), tombstone.c_str()) != 0) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such directory"));
    return absl::InternalError(absl::StrCat("cannot delete ", path, ": ", std::strerror(err)));
  }
  // The rename is the commit: a crash after the fsync leaves only a tombstone behind.
  if (absl::Status synced = SyncDirectory(parent); !synced.ok()) {
    LOG(WARNING) << "deleted " << path << " may reappear after a power loss: " << synced;
  }
  fs::remove_all(tombstone, ec);
  if (ec) {
    LOG(WARNING) << "cannot remove " << tombstone
                 << " (removed at the next start): " << ec.message();
  }
  return bytes;
}

int RemoveTombstones(const std::string& dir) {
  std::error_code ec;
  std::vector<fs::path> tombstones;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().rfind(kTombstonePrefix, 0) == 0) {
      tombstones.push_back(entry.path());
    }
  }
  int removed = 0;
  for (const fs::path& path : tombstones) {
    LOG(WARNING) << "removing " << path.string() << " (a delete interrupted by a crash)";
    std::error_code inner;
    fs::remove_all(path, inner);
    if (inner) {
      LOG(WARNING) << "cannot remove " << path.string() << ": " << inner.message();
    } else {
      ++removed;
    }
  }
  return removed;
}

int64_t DirectoryBytes(const std::string& path) {
  std::error_code ec;
  const auto status = fs::symlink_status(path, ec);
  if (ec) return 0;
  if (fs::is_regular_file(status)) {
    const auto size = fs::file_size(path, ec);
    return ec ? 0 : static_cast<int64_t>(size);
  }
  if (!fs::is_directory(status)) return 0;
  int64_t total = 0;
  fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code inner;
    if (it->is_regular_file(inner) && !it->is_symlink(inner)) {
      const auto size = it->file_size(inner);
      if (!inner) total += static_cast<int64_t>(size);
    }
  }
  return total;
}

absl::StatusOr<std::chrono::seconds> ParseAge(std::string_view text_view,
                                              std::string_view field_view) {
  const std::string text(text_view);
  const std::string field(field_view);
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": expected an age such as 30d, 12h, 90m, 45s or 2w, got '", text, "'"));
  };
  if (text.empty()) return bad();
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    int64_t value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (value > (int64_t{1} << 40)) return bad();
      value = value * 10 + (text[i] - '0');
      ++i;
    }
    if (i == start) return bad();
    int64_t unit = 1;
    if (i < text.size()) {
      switch (text[i]) {
        case 's':
          unit = 1;
          break;
        case 'm':
          unit = 60;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'd':
          unit = 86400;
          break;
        case 'w':
          unit = 7 * 86400;
          break;
        default:
          return bad();
      }
      ++i;
    } else if (start != 0) {
      return bad();  // "1d5": a unit-less part only on its own
    }
    total += value * unit;
  }
  return std::chrono::seconds(total);
}

}  // namespace segserve::common
