// File: server/model/torch_zip.h — reads the records of a torch.save zip archive.
//
// Why not LibTorch's caffe2::serialize::PyTorchStreamReader: its constructor throws after
// miniz allocated its state (which then leaks, since no destructor runs) on a bad folder
// layout, a missing, case-variant or unreadable version record, unsupported flags, ...; the
// checkpoint fuzzer found that three times by three different roads (docs/RELIABILITY.md).
// torch.save stores every record uncompressed, so the whole format we accept is a zip
// directory plus byte ranges: this validates every entry up front and hands out views.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"

namespace segserve::model {

class TorchZipArchive {
 public:
  // Validates `bytes` (which must outlive the archive): a single-disk, non-Zip64 zip whose
  // entries all lie under one "<prefix>/" folder, each stored (method 0, no encryption,
  // equal sizes) with a valid local header and its data inside the archive, names unique;
  // a "version" or ".data/version" record holding a supported format version (1..10).
  // InvalidArgument naming the first problem otherwise.
  static absl::StatusOr<TorchZipArchive> Open(const std::string& bytes);

  // The bytes of record "<prefix>/<name>", CRC-32 checked. NotFound when there is no such
  // record, InvalidArgument when its CRC does not match.
  absl::StatusOr<std::string_view> Record(const std::string& name) const;

  const std::string& prefix() const { return prefix_; }
  uint64_t version() const { return version_; }

 private:
  struct Entry {
    uint64_t data = 0;  // offset of the record's bytes in the archive
    uint64_t size = 0;
    uint32_t crc = 0;
  };

  TorchZipArchive(const std::string& bytes, std::string prefix,
                  std::map<std::string, Entry> entries)
      : bytes_(&bytes), prefix_(std::move(prefix)), entries_(std::move(entries)) {}

  const std::string* bytes_;
  std::string prefix_;
  std::map<std::string, Entry> entries_;  // by name below the prefix
  uint64_t version_ = 0;
};

}  // namespace segserve::model
