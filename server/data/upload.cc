#include "server/data/upload.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/data/absl_compat.h"
#include "server/data/dataset_internal.h"
#include "server/data/nnunet.h"

namespace segserve::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

absl::Status ErrnoStatus(const char *what, const std::string &path, int err) {
  if (err == ENOSPC || err == EDQUOT) {
    return absl::ResourceExhaustedError(absl::StrCat(what, " ", path, ": no space left on device"));
  }
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

bool PlainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

const char *LayoutName(UploadLayout layout) {
  return layout == UploadLayout::kNnUnet ? "nnunet" : "native";
}

// An error of the data-set readers, with the staging directory taken out of it so that it
// names the file as the client sent it.
absl::Status RelativeTo(const std::string &root, const absl::Status &status) {
  const std::string message = absl::StrReplaceAll(
      status.message(), {{absl::StrCat("dataset ", root, ": "), ""}, {root + "/", ""}});
  return absl::Status(status.code(), message);
}

// rename(2) that refuses to replace `to` (plain rename would replace an empty directory).
// Falls back to a check and rename where the file system lacks RENAME_NOREPLACE.
int RenameNoReplace(const std::string &from, const std::string &to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -1;
  std::error_code ec;
  if (fs::exists(fs::symlink_status(to, ec))) {
    errno = EEXIST;
    return -1;
  }
  return ::rename(from.c_str(), to.c_str());
}

}  // namespace

absl::Status ValidateUploadPath(std::string_view path, UploadLayout layout) {
  const std::string shown = absl::CHexEscape(Sv(path));
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("file '", shown, "': ", Sv(why)));
  };
  if (path.empty()) return bad("empty path");
  if (path.size() > 300) return bad("path longer than 300 bytes");
  if (path.front() == '/') return bad("absolute paths are not allowed");
  const std::vector<std::string> parts = absl::StrSplit(Sv(path), '/');
  for (const std::string &part : parts) {
    if (part.empty()) return bad("empty path component");
    if (part == "." || part == "..") return bad("'.' and '..' are not allowed");
    if (part[0] == '.') return bad("hidden files and folders are not allowed");
    if (part.size() > 128) return bad("a name longer than 128 characters");
    for (char c : part) {
      if (!PlainChar(c)) return bad("only [A-Za-z0-9._-] are allowed in names");
    }
  }
  const bool nnunet = layout == UploadLayout::kNnUnet;
  const char *image_dir = nnunet ? "imagesTr" : "images";
  const char *mask_dir = nnunet ? "labelsTr" : "masks";
  const std::string expected = absl::StrCat("dataset.json, ", image_dir, "/<file> or ", mask_dir,
                                            "/<file> (", LayoutName(layout), " layout)");
  if (parts.size() == 1) {
    if (parts[0] == "dataset.json") return absl::OkStatus();
    return bad(absl::StrCat("not part of the layout: expected ", expected));
  }
  if (parts.size() != 2) return bad(absl::StrCat("too deep: expected ", expected));
  if (parts[0] == image_dir) {
    if (!FormatFromPath(parts[1]).ok() && !IsNiftiPath(parts[1])) {
      return bad(
          "images need a .png, .jpg, .jpeg, .tif or .tiff extension (volumes .nii or "
          ".nii.gz)");
    }
    return absl::OkStatus();
  }
  if (parts[0] == mask_dir) {
    if (!absl::EndsWith(parts[1], ".png") && !IsNiftiPath(parts[1])) {
      return bad("masks must be .png files (label volumes .nii or .nii.gz)");
    }
    return absl::OkStatus();
  }
  return bad(absl::StrCat("not part of the layout: expected ", expected));
}

// ---------------------------------------------------------------------------------------
// UploadAttempt

UploadAttempt::~UploadAttempt() {
  if (fd_ >= 0) ::close(fd_);
  if (!published_ && !abandoned_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
    if (ec) LOG(WARNING) << "upload: cannot remove " << staging_ << ": " << ec.message();
  }
  owner_.Release(fs::path(staging_).filename().string());
}

absl::Status UploadAttempt::Fail(std::string_view path, std::string_view reason) const {
  return absl::InvalidArgumentError(
      absl::StrCat("file '", absl::CHexEscape(Sv(path)), "': ", Sv(reason)));
}

absl::Status UploadAttempt::CloseFile(bool sync) {
  const std::string path = staging_ + "/" + current_;
  int rc = sync ? ::fsync(fd_) : 0;
  const int err = errno;
  ::close(fd_);
  fd_ = -1;
  current_.clear();
  if (rc != 0) return ErrnoStatus("fsync", path, err);
  return absl::OkStatus();
}

absl::Status UploadAttempt::Write(std::string_view path, int64_t offset, std::string_view data,
                                  bool last) {
  const UploadLimits &limits = owner_.limits();
  if (current_.empty() || path != current_) {
    if (!current_.empty()) {
      return Fail(path, absl::StrCat("starts before the last chunk of '", current_, "'"));
    }
    RETURN_IF_ERROR(ValidateUploadPath(path, header_.layout));
    const std::string name(path);
    if (files_.count(name) > 0) return Fail(path, "sent twice");
    if (static_cast<int64_t>(files_.size()) >= header_.file_count) {
      return Fail(path,
                  absl::StrCat("one file more than header.file_count (", header_.file_count, ")"));
    }
    if (offset != 0) return Fail(path, absl::StrCat("first chunk at offset ", offset, ", not 0"));
    const std::string full = staging_ + "/" + name;
    RETURN_IF_ERROR(common::MakeDirectories(fs::path(full).parent_path().string()));
    fd_ = ::open(full.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) return ErrnoStatus("create", full, errno);
    files_.insert(name);
    current_ = name;
    current_bytes_ = 0;
  } else if (offset != current_bytes_) {
    return Fail(path, absl::StrCat("chunk at offset ", offset, ", expected ", current_bytes_));
  }
  const int64_t size = static_cast<int64_t>(data.size());
  const int64_t max_file = std::min(limits.max_file_bytes, limits.max_dataset_bytes);
  if (current_bytes_ + size > max_file) {
    return Fail(path, absl::StrCat("larger than the per-file limit of ", max_file, " bytes"));
  }
  if (total_bytes_ + size > header_.total_bytes) {
    return Fail(path, absl::StrCat("the files hold more than header.total_bytes (",
                                   header_.total_bytes, " bytes)"));
  }
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", staging_ + "/" + current_, errno);
    }
    written += static_cast<size_t>(n);
  }
  current_bytes_ += size;
  total_bytes_ += size;
  // No fsync per file: Publish syncs the whole staging directory's file system once.
  if (last) RETURN_IF_ERROR(CloseFile(/*sync=*/false));
  return absl::OkStatus();
}

absl::Status UploadAttempt::CheckEveryFileUsed(const Dataset &opened) const {
  std::set<std::string> used = {"dataset.json"};
  const std::string prefix = opened.root + "/";
  for (const DatasetSample &s : opened.samples) {
    for (const std::string *p : {&s.image_path, &s.mask_path}) {
      if (absl::StartsWith(*p, prefix)) used.insert(p->substr(prefix.size()));
    }
  }
  for (const std::string &file : files_) {
    if (used.count(file) == 0) {
      const char *ext = opened.volumetric() ? ".nii.gz" : ".png";
      return Fail(file, header_.layout == UploadLayout::kNnUnet
                            ? absl::StrCat("is not part of the data set (every imagesTr/"
                                           "<case>_0000 image needs labelsTr/<case>",
                                           ext, " and the reverse)")
                            : absl::StrCat("is not part of the data set (every images/<id> "
                                           "image needs masks/<id>",
                                           ext, " and the reverse)"));
    }
  }
  return absl::OkStatus();
}

namespace {

// A file's extension as the readers see it: ".nii.gz" is one.
std::string Extension(const std::string &path) {
  if (IsNiftiPath(path)) return path.substr(NiftiStem(path).size());
  return fs::path(path).extension().string();
}

}  // namespace

absl::Status UploadAttempt::ConvertNnUnet(const Dataset &opened) {
  RETURN_IF_ERROR(common::MakeDirectories(staging_ + "/images"));
  RETURN_IF_ERROR(common::MakeDirectories(staging_ + "/masks"));
  DatasetManifest manifest;
  manifest.name = header_.name;
  manifest.channels = opened.channels;
  manifest.classes = opened.classes;
  manifest.split_lists.emplace();
  // Explicit lists name samples, or for volumes the cases (each once).
  const auto add = [&](const std::vector<int> &split, std::vector<std::string> &ids) {
    for (const int i : split) {
      const DatasetSample &s = opened.samples[i];
      const std::string &id = s.volume >= 0 ? opened.volumes[s.volume].id : s.id;
      if (ids.empty() || ids.back() != id) ids.push_back(id);
    }
  };
  add(opened.train, manifest.split_lists->train);
  add(opened.val, manifest.split_lists->val);
  add(opened.test, manifest.split_lists->test);
  if (opened.volumetric()) {
    manifest.nifti = opened.slicing;
    for (const DatasetVolume &v : opened.volumes) {
      const std::string image = absl::StrCat(staging_, "/images/", v.id, Extension(v.image_path));
      const std::string mask = absl::StrCat(staging_, "/masks/", v.id, Extension(v.label_path));
      if (::rename(v.image_path.c_str(), image.c_str()) != 0) {
        return ErrnoStatus("rename", v.image_path, errno);
      }
      if (::rename(v.label_path.c_str(), mask.c_str()) != 0) {
        return ErrnoStatus("rename", v.label_path, errno);
      }
    }
  }
  for (const DatasetSample &s : opened.samples) {
    if (s.volume >= 0) continue;  // moved with its volume above
    const std::string image =
        absl::StrCat(staging_, "/images/", s.id, fs::path(s.image_path).extension().string());
    const std::string mask = absl::StrCat(staging_, "/masks/", s.id, ".png");
    if (::rename(s.image_path.c_str(), image.c_str()) != 0) {
      return ErrnoStatus("rename", s.image_path, errno);
    }
    if (::rename(s.mask_path.c_str(), mask.c_str()) != 0) {
      return ErrnoStatus("rename", s.mask_path, errno);
    }
  }
  std::error_code ec;
  fs::remove_all(staging_ + "/imagesTr", ec);
  fs::remove_all(staging_ + "/labelsTr", ec);
  return common::WriteFileAtomically(staging_ + "/dataset.json", ManifestToJson(manifest));
}

absl::StatusOr<Dataset> UploadAttempt::Publish() {
  if (!current_.empty()) return Fail(current_, "the stream ended before its last chunk");
  if (static_cast<int64_t>(files_.size()) != header_.file_count) {
    return absl::InvalidArgumentError(absl::StrCat("upload: the stream held ", files_.size(),
                                                   " files, header.file_count says ",
                                                   header_.file_count));
  }
  if (total_bytes_ != header_.total_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("upload: the stream held ", total_bytes_,
                                                   " bytes, header.total_bytes says ",
                                                   header_.total_bytes));
  }
  if (files_.count("dataset.json") == 0) return Fail("dataset.json", "missing");
  const auto received = std::chrono::steady_clock::now();
  OpenOptions options;
  options.verify_contents = true;  // every image and mask decoded, sizes and values checked
  options.max_pixels = owner_.limits().max_pixels;
  absl::StatusOr<Dataset> opened = header_.layout == UploadLayout::kNnUnet
                                       ? OpenNnUnetDataset(staging_, options)
                                       : OpenDataset(staging_, options);
  if (!opened.ok()) {
    return absl::InvalidArgumentError(RelativeTo(staging_, opened.status()).message());
  }
  RETURN_IF_ERROR(CheckEveryFileUsed(*opened));
  if (header_.layout == UploadLayout::kNnUnet) {
    RETURN_IF_ERROR(ConvertNnUnet(*opened));
  } else {
    // The set is known by its folder's name: keep the manifest's name in step with it.
    ASSIGN_OR_RETURN(json manifest, internal::ReadJsonFile(staging_ + "/dataset.json"));
    manifest["name"] = header_.name;
    RETURN_IF_ERROR(
        common::WriteFileAtomically(staging_ + "/dataset.json", manifest.dump(2) + "\n"));
  }
  options.verify_contents = false;  // contents checked above; this checks the conversion
  absl::StatusOr<Dataset> staged = OpenDataset(staging_, options);
  if (!staged.ok()) {
    LOG(ERROR) << "upload " << header_.upload_id
               << ": converted set does not open: " << staged.status();
    return absl::InternalError("the uploaded data set could not be converted");
  }
  const json marker = {{"upload_id", header_.upload_id},
                       {"layout", LayoutName(header_.layout)},
                       {"files", files_.size()},
                       {"bytes", total_bytes_}};
  RETURN_IF_ERROR(
      common::WriteFileAtomically(staging_ + "/" + kUploadMarkerFile, marker.dump() + "\n"));
  // One syncfs: the rename below publishes durable files.
  RETURN_IF_ERROR(common::SyncFileSystem(staging_));
  const std::string target = owner_.datasets_dir() + "/" + header_.name;
  if (RenameNoReplace(staging_, target) != 0) {
    const int err = errno;
    if (err == EEXIST || err == ENOTEMPTY) {
      if (std::optional<Dataset> mine = owner_.PublishedBy(target, header_.upload_id)) {
        return *std::move(mine);
      }
      return absl::AlreadyExistsError(
          absl::StrCat("name: data set '", header_.name, "' already exists"));
    }
    return ErrnoStatus("rename", staging_, err);
  }
  published_ = true;
  if (absl::Status s = common::SyncDirectory(owner_.datasets_dir()); !s.ok()) {
    LOG(WARNING) << "upload " << header_.name << ": published, maybe not durably: " << s;
  }
  Dataset result = *std::move(staged);
  const auto move_root = [&](std::string &path) {
    if (absl::StartsWith(path, staging_)) path = target + path.substr(staging_.size());
  };
  move_root(result.root);
  for (DatasetSample &s : result.samples) {
    move_root(s.image_path);
    move_root(s.mask_path);
  }
  for (DatasetVolume &v : result.volumes) {
    move_root(v.image_path);
    move_root(v.label_path);
  }
  const auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
  LOG(INFO) << "upload: published data set " << header_.name << " (" << result.samples.size()
            << " images, " << total_bytes_ << " bytes, " << LayoutName(header_.layout)
            << " layout): received in " << seconds(received - started_)
            << " s, validated and published in "
            << seconds(std::chrono::steady_clock::now() - received) << " s";
  return result;
}

// ---------------------------------------------------------------------------------------
// DatasetUploads

namespace {

std::string Absolute(const std::string &dir) {
  std::error_code ec;
  fs::path path = fs::weakly_canonical(fs::absolute(dir), ec);
  return ec ? fs::absolute(dir).string() : path.string();
}

absl::Status ValidateHeader(const UploadHeader &h, const UploadLimits &limits) {
  const auto bad = [](std::string_view field, std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("header.", Sv(field), ": ", Sv(why)));
  };
  if (h.name.empty() || h.name.size() > 128 || h.name[0] == '.' ||
      !std::all_of(h.name.begin(), h.name.end(), PlainChar)) {
    return bad("name", "must be 1..128 characters [A-Za-z0-9._-], not starting with '.'");
  }
  if (h.upload_id.size() < 8 || h.upload_id.size() > 128 ||
      !std::all_of(h.upload_id.begin(), h.upload_id.end(),
                   [](char c) { return PlainChar(c) && c != '.'; })) {
    return bad("upload_id", "must be 8..128 characters [A-Za-z0-9_-]");
  }
  if (h.total_bytes < 1 || h.total_bytes > limits.max_dataset_bytes) {
    return bad("total_bytes", absl::StrCat(h.total_bytes, " bytes is outside 1..",
                                           limits.max_dataset_bytes, " (--max_dataset_bytes)"));
  }
  if (h.file_count < 1 || h.file_count > limits.max_files) {
    return bad("file_count", absl::StrCat(h.file_count, " is outside 1..", limits.max_files));
  }
  return absl::OkStatus();
}

}  // namespace

DatasetUploads::DatasetUploads(std::string datasets_dir, UploadLimits limits)
    : dir_(Absolute(datasets_dir)), limits_(limits) {}

std::optional<Dataset> DatasetUploads::PublishedBy(const std::string &dir,
                                                   const std::string &upload_id) const {
  absl::StatusOr<json> marker = internal::ReadJsonFile(dir + "/" + kUploadMarkerFile);
  if (!marker.ok() || marker->value("upload_id", std::string()) != upload_id) return std::nullopt;
  OpenOptions options;
  options.verify_contents = false;
  absl::StatusOr<Dataset> dataset = OpenDataset(dir, options);
  if (!dataset.ok()) return std::nullopt;
  return *std::move(dataset);
}

void DatasetUploads::Release(const std::string &staging) {
  absl::MutexLock lock(&mu_);
  active_.erase(staging);
}

absl::StatusOr<DatasetUploads::Begun> DatasetUploads::Begin(UploadHeader header) {
  RETURN_IF_ERROR(ValidateHeader(header, limits_));
  const std::string target = dir_ + "/" + header.name;
  std::error_code ec;
  if (fs::exists(fs::symlink_status(target, ec))) {
    Begun begun;
    begun.published = PublishedBy(target, header.upload_id);
    if (begun.published.has_value()) return begun;
    return absl::AlreadyExistsError(
        absl::StrCat("header.name: data set '", header.name, "' already exists"));
  }
  // Earlier attempts of this upload that are not running any more (the client went away):
  // their staging directories go before this attempt starts.
  const std::string prefix = absl::StrCat(kUploadStagingPrefix, header.upload_id, ".");
  std::vector<fs::path> stale;
  std::string staging;
  {
    absl::MutexLock lock(&mu_);
    for (const auto &entry : fs::directory_iterator(dir_, ec)) {
      const std::string name = entry.path().filename().string();
      if (absl::StartsWith(name, prefix) && active_.count(name) == 0) stale.push_back(entry.path());
    }
    do {
      staging = absl::StrCat(prefix, ++attempts_);
    } while (active_.count(staging) > 0 ||
             fs::exists(fs::symlink_status(dir_ + "/" + staging, ec)));
    active_.insert(staging);
  }
  // From here the attempt owns the name: its destructor releases it.
  std::unique_ptr<UploadAttempt> attempt(
      new UploadAttempt(*this, std::move(header), dir_ + "/" + staging));
  for (const fs::path &path : stale) {
    std::error_code remove_ec;
    fs::remove_all(path, remove_ec);
    LOG(INFO) << "upload: removed the staging directory of an earlier attempt: " << path;
  }
  if (!fs::create_directory(attempt->staging_dir(), ec) || ec) {
    return ErrnoStatus("mkdir", attempt->staging_dir(), ec ? ec.value() : EEXIST);
  }
  Begun begun;
  begun.attempt = std::move(attempt);
  return begun;
}

}  // namespace segserve::data
