#include "server/model/torch_zip.h"

#include <zlib.h>

#include "absl/strings/str_cat.h"

namespace segserve::model {
namespace {

// Little-endian field of `width` bytes at `pos`; callers have checked pos + width <= size.
uint32_t ReadLe(const std::string& bytes, uint64_t pos, int width) {
  uint32_t value = 0;
  for (int i = width - 1; i >= 0; --i) {
    value = (value << 8) | static_cast<uint8_t>(bytes[pos + static_cast<uint64_t>(i)]);
  }
  return value;
}

uint32_t Crc32(std::string_view data) {
  return static_cast<uint32_t>(
      crc32_z(crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data.data()), data.size()));
}

constexpr uint32_t kEndOfDirectory = 0x06054b50;
constexpr uint32_t kDirectoryEntry = 0x02014b50;
constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint64_t kEndOfDirectorySize = 22;
constexpr uint64_t kDirectoryEntrySize = 46;
constexpr uint64_t kLocalHeaderSize = 30;
// General-purpose flags we cannot read: encrypted (bit 0), compressed patch data (bit 5),
// strong encryption (bit 6), masked local headers (bit 13).
constexpr uint32_t kUnreadableFlags = (1u << 0) | (1u << 5) | (1u << 6) | (1u << 13);

absl::Status Invalid(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("not a readable torch.save archive: ", what));
}

}  // namespace

absl::StatusOr<TorchZipArchive> TorchZipArchive::Open(const std::string& bytes) {
  if (bytes.size() < kEndOfDirectorySize) return Invalid("zip archive too short");
  // The end-of-central-directory record is in the last 22 + 65535 bytes (the comment).
  uint64_t eocd = bytes.size();
  const uint64_t lowest =
      bytes.size() > kEndOfDirectorySize + 65535 ? bytes.size() - kEndOfDirectorySize - 65535 : 0;
  for (uint64_t pos = bytes.size() - kEndOfDirectorySize + 1; pos-- > lowest;) {
    if (ReadLe(bytes, pos, 4) == kEndOfDirectory) {
      eocd = pos;
      break;
    }
  }
  if (eocd == bytes.size()) return Invalid("zip archive has no directory");
  const uint32_t disk = ReadLe(bytes, eocd + 4, 2);
  const uint32_t directory_disk = ReadLe(bytes, eocd + 6, 2);
  const uint32_t disk_entries = ReadLe(bytes, eocd + 8, 2);
  const uint32_t count = ReadLe(bytes, eocd + 10, 2);
  const uint64_t dir_size = ReadLe(bytes, eocd + 12, 4);
  const uint64_t dir_offset = ReadLe(bytes, eocd + 16, 4);
  if (count == 0xffff || dir_size == 0xffffffff || dir_offset == 0xffffffff) {
    return Invalid("Zip64 archives (over 4 GiB or 65535 records) are not supported");
  }
  if (disk != 0 || directory_disk != 0 || disk_entries != count) {
    return Invalid("multi-disk zip archives are not supported");
  }
  if (dir_offset + dir_size > eocd) return Invalid("zip directory lies outside the archive");

  std::string prefix;
  std::map<std::string, Entry> entries;
  uint64_t pos = dir_offset;
  for (uint32_t i = 0; i < count; ++i) {
    if (pos + kDirectoryEntrySize > dir_offset + dir_size ||
        ReadLe(bytes, pos, 4) != kDirectoryEntry) {
      return Invalid("zip directory entry is malformed");
    }
    const uint64_t name_length = ReadLe(bytes, pos + 28, 2);
    const uint64_t extra_length = ReadLe(bytes, pos + 30, 2);
    const uint64_t comment_length = ReadLe(bytes, pos + 32, 2);
    const uint64_t next = pos + kDirectoryEntrySize + name_length + extra_length + comment_length;
    if (next > dir_offset + dir_size) return Invalid("zip directory entry is malformed");
    const std::string name = bytes.substr(pos + kDirectoryEntrySize, name_length);
    const size_t slash = name.find('/');
    if (slash == std::string::npos || slash == 0) {
      return Invalid(absl::StrCat("zip entry outside an archive folder: ", name));
    }
    if (prefix.empty()) prefix = name.substr(0, slash);
    if (name.compare(0, slash, prefix) != 0 || name.size() == slash + 1) {
      return Invalid(absl::StrCat("zip entry outside the archive folder \"", prefix,
                                  "/\": ", name));
    }
    const uint64_t local = ReadLe(bytes, pos + 42, 4);
    if (local + kLocalHeaderSize > dir_offset || ReadLe(bytes, local, 4) != kLocalHeader) {
      return Invalid(absl::StrCat("zip entry has no valid local header: ", name));
    }
    // torch.save stores every record uncompressed. Requiring that (method 0 in both
    // headers, no unreadable flags, equal sizes, the data inside the archive) bounds every
    // record by the file's size.
    Entry entry;
    entry.crc = ReadLe(bytes, pos + 16, 4);
    entry.size = ReadLe(bytes, pos + 20, 4);
    entry.data = local + kLocalHeaderSize + ReadLe(bytes, local + 26, 2) +
                 ReadLe(bytes, local + 28, 2);
    if (ReadLe(bytes, pos + 10, 2) != 0 || ReadLe(bytes, local + 8, 2) != 0 ||
        (ReadLe(bytes, pos + 8, 2) & kUnreadableFlags) != 0 ||
        (ReadLe(bytes, local + 6, 2) & kUnreadableFlags) != 0 ||
        ReadLe(bytes, pos + 24, 4) != entry.size || entry.data + entry.size > dir_offset) {
      return Invalid(absl::StrCat(
          "zip entry is compressed, encrypted or larger than the archive: ", name));
    }
    if (!entries.emplace(name.substr(slash + 1), entry).second) {
      return Invalid(absl::StrCat("zip archive holds record ", name, " twice"));
    }
    pos = next;
  }

  TorchZipArchive archive(bytes, std::move(prefix), std::move(entries));
  // The format version, as LibTorch reads it: ".data/version" first, then "version".
  const std::string version_name =
      archive.entries_.count(".data/version") != 0 ? ".data/version" : "version";
  if (archive.entries_.count(version_name) == 0) return Invalid("archive has no version record");
  absl::StatusOr<std::string_view> text = archive.Record(version_name);
  if (!text.ok()) return text.status();
  if (text->size() > 1 && text->back() == '\n') text->remove_suffix(1);
  if (text->empty() || text->size() > 9) return Invalid("archive version record is unreadable");
  for (char c : *text) {
    if (c < '0' || c > '9') return Invalid("archive version is not a number");
    archive.version_ = archive.version_ * 10 + static_cast<uint64_t>(c - '0');
  }
  // LibTorch 1.13 writes version 3 and reads 1..10 (caffe2/serialize/versions.h).
  if (archive.version_ < 1 || archive.version_ > 10) {
    return Invalid(absl::StrCat("archive format version ", archive.version_,
                                " is not supported (1..10)"));
  }
  return archive;
}

absl::StatusOr<std::string_view> TorchZipArchive::Record(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat("torch.save archive has no record ", prefix_, "/",
                                            name));
  }
  std::string_view data(bytes_->data() + it->second.data, it->second.size);
  if (Crc32(data) != it->second.crc) {
    return Invalid(absl::StrCat("record ", prefix_, "/", name, " fails its CRC-32 check"));
  }
  return data;
}

}  // namespace segserve::model
