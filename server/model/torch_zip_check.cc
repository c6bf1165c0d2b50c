#include "server/model/torch_zip_check.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace segserve::model {
namespace {

uint32_t ReadLe(const std::string& bytes, size_t pos, int width) {
  uint32_t value = 0;
  for (int i = width - 1; i >= 0; --i) {
    value = (value << 8) | static_cast<uint8_t>(bytes[pos + static_cast<size_t>(i)]);
  }
  return value;
}

// CRC-32 (zip's polynomial), bitwise: only the few bytes of the version record need it.
uint32_t Crc32(const char* data, size_t size) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= static_cast<uint8_t>(data[i]);
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

}  // namespace

absl::Status CheckTorchZipDirectory(const std::string& bytes) {
  constexpr size_t kEocdSize = 22;
  if (bytes.size() < kEocdSize) return absl::InvalidArgumentError("zip archive too short");
  // The end-of-central-directory record is in the last 22 + 65535 bytes.
  size_t eocd = std::string::npos;
  const size_t lowest = bytes.size() > kEocdSize + 65535 ? bytes.size() - kEocdSize - 65535 : 0;
  for (size_t pos = bytes.size() - kEocdSize + 1; pos-- > lowest;) {
    if (ReadLe(bytes, pos, 4) == 0x06054b50) {
      eocd = pos;
      break;
    }
  }
  if (eocd == std::string::npos) return absl::InvalidArgumentError("zip archive has no directory");
  const uint32_t entries = ReadLe(bytes, eocd + 10, 2);
  const uint64_t dir_size = ReadLe(bytes, eocd + 12, 4);
  const uint64_t dir_offset = ReadLe(bytes, eocd + 16, 4);
  // Zip64 (files over 4 GiB): the bounded reader alone guards those.
  if (entries == 0xffff || dir_size == 0xffffffff || dir_offset == 0xffffffff) {
    return absl::OkStatus();
  }
  if (dir_offset + dir_size > eocd) {
    return absl::InvalidArgumentError("zip directory lies outside the archive");
  }
  std::string prefix;
  bool has_version = false;
  size_t pos = static_cast<size_t>(dir_offset);
  for (uint32_t i = 0; i < entries; ++i) {
    if (pos + 46 > eocd || ReadLe(bytes, pos, 4) != 0x02014b50) {
      return absl::InvalidArgumentError("zip directory entry is malformed");
    }
    const size_t name_length = ReadLe(bytes, pos + 28, 2);
    const size_t extra_length = ReadLe(bytes, pos + 30, 2);
    const size_t comment_length = ReadLe(bytes, pos + 32, 2);
    const uint64_t local_offset = ReadLe(bytes, pos + 42, 4);
    if (pos + 46 + name_length > eocd || local_offset >= dir_offset) {
      return absl::InvalidArgumentError("zip directory entry points outside the archive");
    }
    const std::string name = bytes.substr(pos + 46, name_length);
    const size_t slash = name.find('/');
    if (slash == std::string::npos || slash == 0) {
      return absl::InvalidArgumentError("zip entry outside an archive folder: " + name);
    }
    if (prefix.empty()) prefix = name.substr(0, slash);
    if (name.compare(0, slash, prefix) != 0) {
      return absl::InvalidArgumentError("zip entries under more than one folder");
    }
    if (local_offset + 30 > dir_offset || ReadLe(bytes, local_offset, 4) != 0x04034b50) {
      return absl::InvalidArgumentError("zip entry has no valid local header: " + name);
    }
    // torch.save stores every record uncompressed. Requiring that (method 0 in both
    // headers, not encrypted, equal sizes, the data inside the archive) bounds what
    // LibTorch allocates per record by the file's size: a directory claiming a 4 GB
    // record in a small file is refused here, not allocated (fuzzer finding).
    const uint64_t size = ReadLe(bytes, pos + 20, 4);
    const uint64_t data = local_offset + 30 + ReadLe(bytes, local_offset + 26, 2) +
                          ReadLe(bytes, local_offset + 28, 2);
    if (ReadLe(bytes, local_offset + 8, 2) != 0 || ReadLe(bytes, pos + 10, 2) != 0 ||
        (ReadLe(bytes, pos + 8, 2) & 1) != 0 || ReadLe(bytes, pos + 24, 4) != size ||
        data + size > dir_offset) {
      return absl::InvalidArgumentError(
          "zip entry is compressed, encrypted or larger than the archive: " + name);
    }
    const std::string rest = name.substr(slash + 1);
    if (rest == "version" || rest == ".data/version") {
      // LibTorch parses this record in its reader's constructor (which leaks when it
      // throws): a CRC-checked decimal number in the supported range.
      if (size == 0 || size > 20 ||
          Crc32(bytes.data() + data, size) != ReadLe(bytes, pos + 16, 4)) {
        return absl::InvalidArgumentError("torch.save archive has an unreadable version record");
      }
      uint64_t version = 0;
      for (uint64_t i = 0; i < size; ++i) {
        const char c = bytes[data + i];
        if (c == '\n' && i + 1 == size) break;
        if (c < '0' || c > '9') {
          return absl::InvalidArgumentError("torch.save archive version is not a number");
        }
        version = version * 10 + static_cast<uint64_t>(c - '0');
      }
      if (version < 1 || version > 10) {
        return absl::InvalidArgumentError(
            absl::StrCat("torch.save archive format version ", version, " is not supported"));
      }
      has_version = true;
    }
    pos += 46 + name_length + extra_length + comment_length;
  }
  if (!has_version) return absl::InvalidArgumentError("torch.save archive has no version record");
  return absl::OkStatus();
}

}  // namespace segserve::model
