#include "server/inference/preprocess.h"

#include "absl/strings/str_cat.h"

namespace segserve::inference {

absl::StatusOr<data::Image> ImageFromRaw(int height, int width, int channels, RawDType dtype,
                                         const std::string& bytes, int64_t max_pixels) {
  if (height <= 0 || width <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image.raw.height/width: must be positive, got ", height, "x", width));
  }
  const int64_t pixels = static_cast<int64_t>(height) * width;
  if (pixels > max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat("image.raw: ", height, "x", width, " = ",
                                                   pixels, " pixels exceeds the limit of ",
                                                   max_pixels, " (--max_image_pixels)"));
  }
  if (channels < 1 || channels > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("image.raw.channels: must be 1..4, got ", channels));
  }
  data::PixelDepth depth = data::PixelDepth::kU8;
  switch (dtype) {
    case RawDType::kUInt8: depth = data::PixelDepth::kU8; break;
    case RawDType::kUInt16: depth = data::PixelDepth::kU16; break;
    case RawDType::kFloat32: depth = data::PixelDepth::kF32; break;
  }
  const uint64_t expected =
      static_cast<uint64_t>(pixels) * channels * data::BytesPerSample(depth);
  if (bytes.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("image.raw.data: expected ", expected,
                                                   " bytes (height*width*channels*dtype size), "
                                                   "got ", bytes.size()));
  }
  data::Image image;
  image.height = height;
  image.width = width;
  image.channels = channels;
  image.depth = depth;
  image.bytes.assign(bytes.begin(), bytes.end());
  return image;
}

absl::StatusOr<PlanarImage> ToModelInput(const data::Image& image,
                                         const model::UnetConfig& config) {
  const int in = image.channels;
  const int out = config.in_channels;
  const bool supported = in == out || (in == 1 && (out == 3 || out == 4)) ||
                         ((in == 3 || in == 4) && out == 1) || (in == 4 && out == 3);
  if (!supported) {
    return absl::InvalidArgumentError(absl::StrCat("image: has ", in,
                                                   " channels; the model expects ", out,
                                                   " (accepted: gray, RGB, RGBA)"));
  }
  const model::UnetConfig normalised = model::WithDefaultNormalisation(config);
  PlanarImage planar;
  planar.height = image.height;
  planar.width = image.width;
  planar.channels = out;
  const size_t plane = image.num_pixels();
  planar.data.resize(plane * static_cast<size_t>(out));
  for (size_t p = 0; p < plane; ++p) {
    const size_t base = p * static_cast<size_t>(in);
    float rgb[4];
    if (in == 1) {
      rgb[0] = rgb[1] = rgb[2] = rgb[3] = image.GetNormalized(base);
    } else {
      for (int c = 0; c < std::min(in, 4); ++c) rgb[c] = image.GetNormalized(base + c);
    }
    for (int c = 0; c < out; ++c) {
      float v;
      if (out == 1 && in != 1) {
        v = 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
      } else {
        v = rgb[c];
      }
      planar.data[static_cast<size_t>(c) * plane + p] =
          (v - normalised.mean[c]) / normalised.std[c];
    }
  }
  return planar;
}

}  // namespace segserve::inference
