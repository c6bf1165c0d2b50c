// Header parsers for ProbeImage (declared in codec.h). Every read is
// bounds-checked: these run on untrusted bytes before any decoder does.
#include <algorithm>
#include <cstdint>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "server/data/absl_compat.h"
#include "server/data/codec.h"

namespace segserve::data {
namespace {

absl::Status Truncated(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("image: truncated ", Sv(what), " header"));
}

uint32_t Be32(const uint8_t *p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint16_t Be16(const uint8_t *p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

absl::Status CheckDims(std::string_view what, uint64_t width, uint64_t height) {
  if (width == 0 || height == 0 || width > 0x7fffffff || height > 0x7fffffff) {
    return absl::InvalidArgumentError(
        absl::StrCat("image: ", Sv(what), " header has invalid dimensions ", width, "x", height));
  }
  return absl::OkStatus();
}

absl::StatusOr<ImageInfo> ProbePng(const uint8_t *p, size_t n) {
  // Signature (8) + length (4) + "IHDR" (4) + 13 bytes of IHDR data.
  if (n < 8 + 8 + 13) return Truncated("PNG");
  if (Be32(p + 8) != 13 || std::string_view(reinterpret_cast<const char *>(p + 12), 4) != "IHDR") {
    return absl::InvalidArgumentError("image: PNG does not start with a valid IHDR chunk");
  }
  const uint32_t width = Be32(p + 16);
  const uint32_t height = Be32(p + 20);
  if (absl::Status s = CheckDims("PNG", width, height); !s.ok()) return s;
  const int depth = p[24];
  const int color_type = p[25];
  ImageInfo info;
  info.format = ImageFormat::kPng;
  info.width = static_cast<int>(width);
  info.height = static_cast<int>(height);
  info.bit_depth = depth;
  switch (color_type) {
    case 0:
      info.channels = 1;
      break;
    case 2:
      info.channels = 3;
      break;
    case 3:
      info.channels = 3;
      info.bit_depth = 8;  // palette entries are 8-bit RGB
      break;
    case 4:
      info.channels = 2;
      break;
    case 6:
      info.channels = 4;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("image: PNG has invalid colour type ", color_type));
  }
  if (depth != 1 && depth != 2 && depth != 4 && depth != 8 && depth != 16) {
    return absl::InvalidArgumentError(absl::StrCat("image: PNG has invalid bit depth ", depth));
  }
  return info;
}

absl::StatusOr<ImageInfo> ProbeJpeg(const uint8_t *p, size_t n) {
  size_t pos = 2;  // after SOI
  while (true) {
    // Markers start with 0xFF, optionally padded with more 0xFF fill bytes.
    if (pos >= n) return Truncated("JPEG");
    if (p[pos] != 0xFF) {
      return absl::InvalidArgumentError("image: JPEG marker expected but not found");
    }
    while (pos < n && p[pos] == 0xFF) ++pos;
    if (pos >= n) return Truncated("JPEG");
    const uint8_t marker = p[pos++];
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
    if (marker == 0xD9 || marker == 0xDA) {
      return absl::InvalidArgumentError("image: JPEG has no frame header before its scan data");
    }
    if (pos + 2 > n) return Truncated("JPEG");
    const uint16_t length = Be16(p + pos);
    if (length < 2) return absl::InvalidArgumentError("image: JPEG segment length invalid");
    const bool is_sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (is_sof) {
      if (length < 8 || pos + 8 > n) return Truncated("JPEG");
      ImageInfo info;
      info.format = ImageFormat::kJpeg;
      info.bit_depth = p[pos + 2];
      info.height = Be16(p + pos + 3);
      info.width = Be16(p + pos + 5);
      info.channels = p[pos + 7];
      if (info.height == 0) {
        return absl::InvalidArgumentError("image: JPEG with DNL-defined height is not supported");
      }
      if (absl::Status s = CheckDims("JPEG", info.width, info.height); !s.ok()) return s;
      if (info.channels != 1 && info.channels != 3 && info.channels != 4) {
        return absl::InvalidArgumentError(
            absl::StrCat("image: JPEG has unsupported component count ", info.channels));
      }
      return info;
    }
    pos += length;
  }
}

class TiffReader {
 public:
  TiffReader(const uint8_t *p, size_t n, bool little) : p_(p), n_(n), little_(little) {}
  bool U16(size_t off, uint32_t *v) const {
    if (off > n_ || n_ - off < 2) return false;
    *v = little_ ? (p_[off] | (p_[off + 1] << 8)) : Be16(p_ + off);
    return true;
  }
  bool U32(size_t off, uint32_t *v) const {
    if (off > n_ || n_ - off < 4) return false;
    *v = little_ ? (uint32_t{p_[off]} | (uint32_t{p_[off + 1]} << 8) |
                    (uint32_t{p_[off + 2]} << 16) | (uint32_t{p_[off + 3]} << 24))
                 : Be32(p_ + off);
    return true;
  }
  // The first value of an IFD entry of type SHORT (3) or LONG (4), inline or at
  // an offset.
  bool FirstValue(size_t entry, uint32_t *v) const {
    uint32_t type, count;
    if (!U16(entry + 2, &type) || !U32(entry + 4, &count) || count == 0) return false;
    if (type == 3) {
      if (count <= 2) return U16(entry + 8, v);
      uint32_t off;
      return U32(entry + 8, &off) && U16(off, v);
    }
    if (type == 4) {
      if (count == 1) return U32(entry + 8, v);
      uint32_t off;
      return U32(entry + 8, &off) && U32(off, v);
    }
    return false;
  }

 private:
  const uint8_t *p_;
  size_t n_;
  bool little_;
};

absl::StatusOr<ImageInfo> ProbeTiff(const uint8_t *p, size_t n) {
  const bool little = p[0] == 'I';
  TiffReader r(p, n, little);
  uint32_t magic, ifd, count;
  if (!r.U16(2, &magic) || !r.U32(4, &ifd)) return Truncated("TIFF");
  if (magic == 43) return absl::InvalidArgumentError("image: BigTIFF is not supported");
  if (magic != 42) return absl::InvalidArgumentError("image: TIFF magic number invalid");
  if (!r.U16(ifd, &count)) return Truncated("TIFF");
  if (count == 0) return absl::InvalidArgumentError("image: TIFF first IFD is empty");
  uint32_t width = 0, height = 0, bits = 1, samples = 1;
  for (uint32_t i = 0; i < count; ++i) {
    const size_t entry = size_t{ifd} + 2 + size_t{i} * 12;
    uint32_t tag;
    if (!r.U16(entry, &tag) || entry + 12 > n) return Truncated("TIFF");
    uint32_t *target = nullptr;
    if (tag == 256) target = &width;
    if (tag == 257) target = &height;
    if (tag == 258) target = &bits;
    if (tag == 277) target = &samples;
    if (target != nullptr && !r.FirstValue(entry, target)) {
      return absl::InvalidArgumentError(absl::StrCat("image: TIFF tag ", tag, " is malformed"));
    }
  }
  if (absl::Status s = CheckDims("TIFF", width, height); !s.ok()) return s;
  if (samples < 1 || samples > 4 || bits < 1 || bits > 64) {
    return absl::InvalidArgumentError(absl::StrCat("image: TIFF has unsupported layout (", samples,
                                                   " samples of ", bits, " bits)"));
  }
  ImageInfo info;
  info.format = ImageFormat::kTiff;
  info.width = static_cast<int>(width);
  info.height = static_cast<int>(height);
  info.channels = static_cast<int>(samples);
  info.bit_depth = static_cast<int>(bits);
  return info;
}

}  // namespace

absl::StatusOr<ImageInfo> ProbeImage(std::string_view bytes) {
  const auto *p = reinterpret_cast<const uint8_t *>(bytes.data());
  const size_t n = bytes.size();
  static constexpr uint8_t kPngSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n >= 8 && std::equal(kPngSig, kPngSig + 8, p)) return ProbePng(p, n);
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return ProbeJpeg(p, n);
  if (n >= 4 && ((p[0] == 'I' && p[1] == 'I') || (p[0] == 'M' && p[1] == 'M'))) {
    return ProbeTiff(p, n);
  }
  return absl::InvalidArgumentError(
      "image: unrecognised format (expected PNG, JPEG or TIFF signature)");
}

}  // namespace segserve::data
