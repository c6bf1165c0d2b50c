#include "server/common/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace segserve::common {
namespace fs = std::filesystem;
namespace {

absl::Status ErrnoStatus(const char* what, const std::string& path) {
  const int err = errno;
  if (err == ENOSPC || err == EDQUOT) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, " ", path, ": no space left on device"));
  }
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return ErrnoStatus("open", path);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoStatus("fsync", path);
  return absl::OkStatus();
}

}  // namespace

absl::Status MakeDirectories(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) {
    errno = ec.value();
    return ErrnoStatus("mkdir", path);
  }
  return absl::OkStatus();
}

AtomicFileWriter::AtomicFileWriter(std::string path, std::string dir, std::string tmp, int fd)
    : path_(std::move(path)), dir_(std::move(dir)), tmp_(std::move(tmp)), fd_(fd) {}

absl::StatusOr<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Create(
    const std::string& path) {
  const fs::path target(path);
  std::string dir = target.has_parent_path() ? target.parent_path().string() : std::string(".");
  if (absl::Status s = MakeDirectories(dir); !s.ok()) return s;
  std::random_device rd;
  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid(), ".", rd());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("create", tmp);
  return std::unique_ptr<AtomicFileWriter>(
      new AtomicFileWriter(path, std::move(dir), std::move(tmp), fd));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

absl::Status AtomicFileWriter::Fail(absl::Status status) {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    fd_ = -1;
  }
  return status;
}

absl::Status AtomicFileWriter::Append(std::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("write ", tmp_, ": closed"));
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoStatus("write", tmp_));
    }
    written += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("commit ", tmp_, ": closed"));
  if (::fsync(fd_) != 0) return Fail(ErrnoStatus("fsync", tmp_));
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    absl::Status s = ErrnoStatus("rename", tmp_);
    ::unlink(tmp_.c_str());
    return s;
  }
  return SyncDirectory(dir_);
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  auto writer = AtomicFileWriter::Create(path);
  if (!writer.ok()) return writer.status();
  if (absl::Status s = (*writer)->Append(contents); !s.ok()) return s;
  return (*writer)->Commit();
}

absl::Status SyncFileSystem(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", dir);
  const int rc = ::syncfs(fd);
  if (rc != 0) {
    absl::Status s = ErrnoStatus("syncfs", dir);
    ::close(fd);
    return s;
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& dir) {
  return FsyncPath(dir, O_RDONLY | O_DIRECTORY);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!fs::exists(path)) return absl::NotFoundError(absl::StrCat("file not found: ", path));
    return absl::InternalError(absl::StrCat("cannot open ", path));
  }
  // One buffer of the file's size (a stream's growing buffer plus its copy would hold a
  // large checkpoint up to three times over); then whatever the size did not cover.
  std::string out;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (!ec && size > 0) {
    out.resize(static_cast<size_t>(size));
    in.read(out.data(), static_cast<std::streamsize>(size));
    out.resize(static_cast<size_t>(in.gcount()));
  }
  if (in) {
    std::ostringstream rest;
    rest << in.rdbuf();
    out += rest.str();
  }
  if (in.bad()) return absl::InternalError(absl::StrCat("read error on ", path));
  return out;
}

absl::StatusOr<std::string> ResolveUnderRoot(const std::string& root,
                                             std::string_view relative_view,
                                             std::string_view field_view) {
  // Debian's Abseil is built without std::string_view aliasing: convert once.
  const std::string relative(relative_view);
  const std::string field(field_view);
  if (relative.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  }
  if (relative.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": absolute paths are not allowed (got '", relative, "')"));
  }
  for (absl::string_view part : absl::StrSplit(relative, '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": '..' is not allowed (got '", relative, "')"));
    }
  }
  std::error_code ec;
  const fs::path root_real = fs::weakly_canonical(fs::absolute(root), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot resolve data root ", root));
  const fs::path resolved = fs::weakly_canonical(root_real / fs::path(relative), ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": cannot resolve '", relative, "'"));
  }
  const auto [root_end, unused] =
      std::mismatch(root_real.begin(), root_real.end(), resolved.begin(), resolved.end());
  if (root_end != root_real.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": '", relative, "' resolves outside the data directory (symlink escape)"));
  }
  return resolved.string();
}

}  // namespace segserve::common
