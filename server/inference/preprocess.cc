#include "server/inference/preprocess.h"

#include "absl/strings/str_cat.h"

namespace segserve::inference {

absl::StatusOr<data::ImageView> RawTensorView(int height, int width, int channels,
                                              RawDType dtype, std::string_view bytes,
                                              int64_t max_pixels) {
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
  return data::ImageView{height, width, channels, depth,
                         reinterpret_cast<const uint8_t*>(bytes.data())};
}

}  // namespace segserve::inference
