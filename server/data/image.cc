#include "server/data/image.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace segserve::data {

size_t BytesPerSample(PixelDepth depth) {
  switch (depth) {
    case PixelDepth::kU8:
      return 1;
    case PixelDepth::kU16:
      return 2;
    case PixelDepth::kF32:
      return 4;
  }
  return 1;
}

double FullScale(PixelDepth depth) {
  switch (depth) {
    case PixelDepth::kU8:
      return 255.0;
    case PixelDepth::kU16:
      return 65535.0;
    case PixelDepth::kF32:
      return 1.0;
  }
  return 1.0;
}

Image Image::Create(int height, int width, int channels, PixelDepth depth) {
  Image image;
  image.height = height;
  image.width = width;
  image.channels = channels;
  image.depth = depth;
  image.bytes.assign(image.num_samples() * BytesPerSample(depth), 0);
  return image;
}

void Image::SetNormalized(size_t i, float v) {
  switch (depth) {
    case PixelDepth::kU8: {
      const float s = std::clamp(v, 0.0f, 1.0f) * 255.0f;
      bytes[i] = static_cast<uint8_t>(std::lround(s));
      return;
    }
    case PixelDepth::kU16: {
      const float s = std::clamp(v, 0.0f, 1.0f) * 65535.0f;
      const uint16_t q = static_cast<uint16_t>(std::lround(s));
      std::memcpy(bytes.data() + 2 * i, &q, 2);
      return;
    }
    case PixelDepth::kF32:
      std::memcpy(bytes.data() + 4 * i, &v, 4);
      return;
  }
}

absl::Status ValidateImage(const Image &image) {
  if (image.height <= 0 || image.width <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("image: dimensions must be positive (got ",
                                                   image.width, "x", image.height, ")"));
  }
  if (image.channels < 1 || image.channels > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("image: channels must be 1..4 (got ", image.channels, ")"));
  }
  const size_t expected = image.num_samples() * BytesPerSample(image.depth);
  if (image.bytes.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image: expected ", expected, " bytes for its shape, got ", image.bytes.size()));
  }
  return absl::OkStatus();
}

Mask Mask::Create(int height, int width) {
  Mask mask;
  mask.height = height;
  mask.width = width;
  mask.ids.assign(mask.num_pixels(), 0);
  return mask;
}

absl::Status ValidateMask(const Mask &mask) {
  if (mask.height <= 0 || mask.width <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("mask: dimensions must be positive (got ", mask.width, "x", mask.height, ")"));
  }
  if (mask.ids.size() != mask.num_pixels()) {
    return absl::InvalidArgumentError(
        absl::StrCat("mask: expected ", mask.num_pixels(), " bytes, got ", mask.ids.size()));
  }
  return absl::OkStatus();
}

}  // namespace segserve::data
