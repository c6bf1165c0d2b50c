// File: server/data/codec.h — image header probing (no decode), decoding with a
// pixel budget, PNG/JPEG/TIFF encoding, and image/mask file I/O. The decoders
// sit behind the network: they never crash on garbage and refuse decompression
// bombs from the header alone, before any pixel is decompressed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/data/image.h"

namespace segserve::data {

enum class ImageFormat { kPng, kJpeg, kTiff };

// "png", "jpeg", "tiff".
std::string_view ImageFormatName(ImageFormat format);

// What a header says about an encoded image.
struct ImageInfo {
  ImageFormat format = ImageFormat::kPng;
  int width = 0;
  int height = 0;
  // Samples per pixel as stored (PNG palette images report 3, gray+alpha 2).
  int channels = 0;
  // Bits per sample as stored (PNG palette: 8; sub-byte gray depths as stored).
  int bit_depth = 0;
};

// Reads only the header: PNG IHDR, JPEG SOFn, TIFF first IFD. InvalidArgument
// for unknown formats, truncated or inconsistent headers.
absl::StatusOr<ImageInfo> ProbeImage(std::string_view bytes);

// 64 Mpx: larger than any tile the service works on, small enough to bound
// memory.
inline constexpr int64_t kDefaultMaxPixels = int64_t{64} * 1024 * 1024;

// Decodes PNG/JPEG/TIFF (8/16-bit, gray/RGB/RGBA) into an RGB(A) or gray Image.
// Probes first: width*height > max_pixels is InvalidArgument naming the limit.
// Undecodable data is InvalidArgument.
absl::StatusOr<Image> DecodeImage(std::string_view bytes, int64_t max_pixels = kDefaultMaxPixels);

// Decodes a class-index mask: an 8-bit single-channel PNG (or TIFF).
absl::StatusOr<Mask> DecodeMask(std::string_view bytes, int64_t max_pixels = kDefaultMaxPixels);

// Lossless PNG (8/16-bit; float images are refused). Deterministic for a given
// input.
absl::StatusOr<std::string> EncodePng(const Image &image);
absl::StatusOr<std::string> EncodePng(const Mask &mask);
// Any supported format; JPEG requires 8-bit gray or RGB (quality 95).
absl::StatusOr<std::string> EncodeImage(const Image &image, ImageFormat format);

// The format a file name's extension implies (.png, .jpg/.jpeg, .tif/.tiff), if
// any.
absl::StatusOr<ImageFormat> FormatFromPath(std::string_view path);

absl::StatusOr<Image> ReadImageFile(const std::string &path,
                                    int64_t max_pixels = kDefaultMaxPixels);
absl::StatusOr<Mask> ReadMaskFile(const std::string &path, int64_t max_pixels = kDefaultMaxPixels);
// Writes atomically; the format follows the extension.
absl::Status WriteImageFile(const std::string &path, const Image &image);
absl::Status WriteMaskFile(const std::string &path, const Mask &mask);

}  // namespace segserve::data
