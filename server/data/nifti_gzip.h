// File: server/data/nifti_gzip.h — the byte streams under server/data/nifti: a reader over
// plain or gzip-compressed bytes held in memory that inflates only as much as is asked for
// (so a header can be checked before a gzip bomb is expanded), and gzip compression for
// writing .nii.gz. zlib stays in the .cc file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace segserve::data {

class ByteReader {
 public:
  // `bytes` must outlive the reader; `name` is used in messages.
  ByteReader(std::string_view bytes, bool gzip, std::string name);
  ~ByteReader();
  ByteReader(const ByteReader &) = delete;
  ByteReader &operator=(const ByteReader &) = delete;

  // Up to `n` bytes into `out`; fewer only at the end of the data. InvalidArgument
  // "<name>: corrupt gzip stream: ..." for bad compressed data.
  absl::StatusOr<size_t> Read(uint8_t *out, size_t n);
  // For gzip: every member read to its end (trailer and CRC checked). Plain: always true.
  bool complete() const;

 private:
  struct Inflater;
  std::string_view bytes_;
  size_t offset_ = 0;
  std::string name_;
  std::unique_ptr<Inflater> inflater_;
};

// `bytes` as one gzip member (level 6).
absl::StatusOr<std::string> GzipCompress(std::string_view bytes);

}  // namespace segserve::data
