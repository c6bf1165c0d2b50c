#include "server/data/nifti_gzip.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace segserve::data {

struct ByteReader::Inflater {
  z_stream stream{};
  bool member_done = false;  // the current member's trailer was read
  bool failed = false;
};

ByteReader::ByteReader(std::string_view bytes, bool gzip, std::string name)
    : bytes_(bytes), name_(std::move(name)) {
  if (!gzip) return;
  inflater_ = std::make_unique<Inflater>();
  // 16 + MAX_WBITS: gzip wrapper only.
  if (inflateInit2(&inflater_->stream, 16 + MAX_WBITS) != Z_OK) inflater_->failed = true;
  inflater_->stream.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(bytes_.data()));
  inflater_->stream.avail_in = static_cast<uInt>(std::min<size_t>(bytes_.size(), UINT32_MAX));
}

ByteReader::~ByteReader() {
  if (inflater_ != nullptr && !inflater_->failed) inflateEnd(&inflater_->stream);
}

bool ByteReader::complete() const {
  return inflater_ == nullptr || (inflater_->member_done && inflater_->stream.avail_in == 0);
}

absl::StatusOr<size_t> ByteReader::Read(uint8_t *out, size_t n) {
  if (n == 0) return 0;  // `out` may be null (an empty buffer): memcpy must not see it
  if (inflater_ == nullptr) {
    const size_t got = std::min(n, bytes_.size() - offset_);
    std::memcpy(out, bytes_.data() + offset_, got);
    offset_ += got;
    return got;
  }
  if (inflater_->failed) {
    return absl::InternalError(absl::StrCat(name_, ": zlib could not be initialised"));
  }
  z_stream &zs = inflater_->stream;
  size_t got = 0;
  while (got < n) {
    if (inflater_->member_done) {
      // Another gzip member may follow (concatenated .gz files are valid gzip).
      if (zs.avail_in == 0) break;
      if (inflateReset(&zs) != Z_OK) {
        return absl::InternalError(absl::StrCat(name_, ": inflateReset failed"));
      }
      inflater_->member_done = false;
    }
    const size_t want = std::min<size_t>(n - got, UINT32_MAX);
    zs.next_out = out + got;
    zs.avail_out = static_cast<uInt>(want);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    got += want - zs.avail_out;
    if (rc == Z_STREAM_END) {
      inflater_->member_done = true;
      continue;
    }
    if (rc == Z_BUF_ERROR || (rc == Z_OK && zs.avail_in == 0 && zs.avail_out > 0)) {
      break;  // input exhausted inside a member: truncated (complete() stays false)
    }
    if (rc != Z_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_, ": corrupt gzip stream: ", zs.msg != nullptr ? zs.msg : zError(rc)));
    }
  }
  return got;
}

absl::StatusOr<std::string> GzipCompress(std::string_view bytes) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError("deflateInit2 failed");
  }
  std::string out(deflateBound(&zs, bytes.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = reinterpret_cast<Bytef *>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return absl::InternalError("gzip compression failed");
  return out;
}

}  // namespace segserve::data
