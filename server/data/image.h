// File: server/data/image.h — the project's own image and mask types (no OpenCV
// in public headers): interleaved HWC samples, row-major, 8/16-bit integer or
// 32-bit float.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/status/status.h"

namespace segserve::data {

enum class PixelDepth { kU8, kU16, kF32 };

// Bytes per sample of `depth` (1, 2 or 4).
size_t BytesPerSample(PixelDepth depth);
// The value of a full-intensity sample: 255, 65535, or 1.0 for float images.
double FullScale(PixelDepth depth);

// Sample `i` of interleaved samples of `depth` at `bytes`, scaled to [0, 1] by FullScale.
inline float SampleToUnit(PixelDepth depth, const uint8_t *bytes, size_t i) {
  switch (depth) {
    case PixelDepth::kU8:
      return bytes[i] * (1.0f / 255.0f);
    case PixelDepth::kU16: {
      uint16_t v;
      std::memcpy(&v, bytes + 2 * i, 2);
      return v * (1.0f / 65535.0f);
    }
    case PixelDepth::kF32: {
      float v;
      std::memcpy(&v, bytes + 4 * i, 4);
      return v;
    }
  }
  return 0.0f;
}

// Interleaved samples someone else owns (a request's raw tensor, an Image): read without
// copying them. The owner must outlive the view.
struct ImageView {
  int height = 0;
  int width = 0;
  int channels = 0;
  PixelDepth depth = PixelDepth::kU8;
  const uint8_t *bytes = nullptr;  // height * width * channels * BytesPerSample(depth)

  size_t num_pixels() const { return static_cast<size_t>(height) * static_cast<size_t>(width); }
  float GetNormalized(size_t i) const { return SampleToUnit(depth, bytes, i); }
};

// An image with `channels` interleaved samples per pixel. Colour images are RGB
// or RGBA (never BGR); gray images have one channel.
struct Image {
  int height = 0;
  int width = 0;
  int channels = 0;
  PixelDepth depth = PixelDepth::kU8;
  std::vector<uint8_t> bytes;  // height * width * channels * BytesPerSample(depth)

  // A zero-filled image.
  static Image Create(int height, int width, int channels, PixelDepth depth = PixelDepth::kU8);

  size_t num_pixels() const { return static_cast<size_t>(height) * static_cast<size_t>(width); }
  size_t num_samples() const { return num_pixels() * static_cast<size_t>(channels); }
  bool empty() const { return bytes.empty(); }

  // Sample `i` (index into the HWC sequence) scaled to [0, 1] by FullScale.
  float GetNormalized(size_t i) const { return SampleToUnit(depth, bytes.data(), i); }

  // Stores `v` (on the [0, 1] scale) into sample `i`: integer depths clamp and
  // round.
  void SetNormalized(size_t i, float v);

  ImageView view() const { return {height, width, channels, depth, bytes.data()}; }

  bool operator==(const Image &other) const {
    return height == other.height && width == other.width && channels == other.channels &&
           depth == other.depth && bytes == other.bytes;
  }
  bool operator!=(const Image &other) const { return !(*this == other); }
};

// OK when the dimensions are positive, channels in 1..4 and the buffer size
// matches.
absl::Status ValidateImage(const Image &image);

// Per-pixel class ids (0..255), row-major.
struct Mask {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> ids;

  static Mask Create(int height, int width);
  size_t num_pixels() const { return static_cast<size_t>(height) * static_cast<size_t>(width); }
  uint8_t at(int y, int x) const { return ids[static_cast<size_t>(y) * width + x]; }
  bool operator==(const Mask &other) const {
    return height == other.height && width == other.width && ids == other.ids;
  }
  bool operator!=(const Mask &other) const { return !(*this == other); }
};

absl::Status ValidateMask(const Mask &mask);

}  // namespace segserve::data
