#include "server/data/codec.h"

#include <algorithm>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/data/absl_compat.h"

namespace segserve::data {
namespace {

// Copies an OpenCV matrix (BGR/BGRA order) into an Image (RGB/RGBA order).
absl::StatusOr<Image> FromMat(const cv::Mat &mat) {
  PixelDepth depth;
  switch (mat.depth()) {
    case CV_8U:
      depth = PixelDepth::kU8;
      break;
    case CV_16U:
      depth = PixelDepth::kU16;
      break;
    case CV_32F:
      depth = PixelDepth::kF32;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("image: unsupported sample type (OpenCV depth ", mat.depth(), ")"));
  }
  const int channels = mat.channels();
  if (channels != 1 && channels != 3 && channels != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("image: unsupported channel count ", channels, " (expected 1, 3 or 4)"));
  }
  Image image = Image::Create(mat.rows, mat.cols, channels, depth);
  const size_t bps = BytesPerSample(depth);
  const size_t row_bytes = static_cast<size_t>(mat.cols) * channels * bps;
  for (int y = 0; y < mat.rows; ++y) {
    const uint8_t *src = mat.ptr<uint8_t>(y);
    uint8_t *dst = image.bytes.data() + y * row_bytes;
    if (channels == 1) {
      std::memcpy(dst, src, row_bytes);
      continue;
    }
    const size_t px = channels * bps;
    for (int x = 0; x < mat.cols; ++x) {
      const uint8_t *s = src + x * px;
      uint8_t *d = dst + x * px;
      std::memcpy(d, s + 2 * bps, bps);  // R <- B position
      std::memcpy(d + bps, s + bps, bps);
      std::memcpy(d + 2 * bps, s, bps);
      if (channels == 4) std::memcpy(d + 3 * bps, s + 3 * bps, bps);
    }
  }
  return image;
}

// Builds a BGR(A) matrix that owns a copy of `image`.
absl::StatusOr<cv::Mat> ToMat(const Image &image) {
  RETURN_IF_ERROR(ValidateImage(image));
  if (image.channels == 2) {
    return absl::InvalidArgumentError("image: two-channel images cannot be encoded");
  }
  const int cv_depth = image.depth == PixelDepth::kU8    ? CV_8U
                       : image.depth == PixelDepth::kU16 ? CV_16U
                                                         : CV_32F;
  cv::Mat mat(image.height, image.width, CV_MAKETYPE(cv_depth, image.channels));
  const size_t bps = BytesPerSample(image.depth);
  const size_t px = image.channels * bps;
  const size_t row_bytes = static_cast<size_t>(image.width) * px;
  for (int y = 0; y < image.height; ++y) {
    const uint8_t *src = image.bytes.data() + y * row_bytes;
    uint8_t *dst = mat.ptr<uint8_t>(y);
    if (image.channels == 1) {
      std::memcpy(dst, src, row_bytes);
      continue;
    }
    for (int x = 0; x < image.width; ++x) {
      const uint8_t *s = src + x * px;
      uint8_t *d = dst + x * px;
      std::memcpy(d, s + 2 * bps, bps);
      std::memcpy(d + bps, s + bps, bps);
      std::memcpy(d + 2 * bps, s, bps);
      if (image.channels == 4) std::memcpy(d + 3 * bps, s + 3 * bps, bps);
    }
  }
  return mat;
}

absl::StatusOr<std::string> Encode(const cv::Mat &mat, const char *ext,
                                   const std::vector<int> &params) {
  std::vector<uint8_t> buf;
  try {
    if (!cv::imencode(ext, mat, buf, params)) {
      return absl::InvalidArgumentError(absl::StrCat("image: cannot encode as ", ext));
    }
  } catch (const cv::Exception &e) {
    return absl::InvalidArgumentError(absl::StrCat("image: cannot encode as ", ext, ": ", e.msg));
  }
  return std::string(buf.begin(), buf.end());
}

}  // namespace

std::string_view ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "png";
    case ImageFormat::kJpeg:
      return "jpeg";
    case ImageFormat::kTiff:
      return "tiff";
  }
  return "unknown";
}

absl::StatusOr<Image> DecodeImage(std::string_view bytes, int64_t max_pixels) {
  ASSIGN_OR_RETURN(const ImageInfo info, ProbeImage(bytes));
  const int64_t pixels = int64_t{info.width} * info.height;
  if (pixels > max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat("image: ", info.width, "x", info.height, " = ",
                                                   pixels, " pixels exceeds the limit of ",
                                                   max_pixels, " pixels"));
  }
  if (info.format == ImageFormat::kJpeg && info.bit_depth != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("image: JPEG with ", info.bit_depth, "-bit samples is not supported"));
  }
  cv::Mat decoded;
  try {
    const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char *>(bytes.data()));
    decoded = cv::imdecode(raw, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception &e) {
    return absl::InvalidArgumentError(
        absl::StrCat("image: undecodable ", Sv(ImageFormatName(info.format)), " data: ", e.msg));
  }
  if (decoded.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("image: undecodable ", Sv(ImageFormatName(info.format)), " data"));
  }
  if (int64_t{decoded.rows} * decoded.cols > max_pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image: decoded size exceeds the limit of ", max_pixels, " pixels"));
  }
  return FromMat(decoded);
}

absl::StatusOr<Mask> DecodeMask(std::string_view bytes, int64_t max_pixels) {
  ASSIGN_OR_RETURN(Image image, DecodeImage(bytes, max_pixels));
  if (image.channels != 1 || image.depth != PixelDepth::kU8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mask: must be an 8-bit single-channel image of class ids (got ", image.channels,
        " channels of ", BytesPerSample(image.depth) * 8, "-bit samples)"));
  }
  Mask mask;
  mask.height = image.height;
  mask.width = image.width;
  mask.ids = std::move(image.bytes);
  return mask;
}

absl::StatusOr<std::string> EncodeImage(const Image &image, ImageFormat format) {
  if (image.depth == PixelDepth::kF32 && format != ImageFormat::kTiff) {
    return absl::InvalidArgumentError("image: float images can only be encoded as TIFF");
  }
  ASSIGN_OR_RETURN(const cv::Mat mat, ToMat(image));
  switch (format) {
    case ImageFormat::kPng:
      return Encode(mat, ".png", {cv::IMWRITE_PNG_COMPRESSION, 3});
    case ImageFormat::kJpeg:
      if (image.depth != PixelDepth::kU8 || image.channels == 4) {
        return absl::InvalidArgumentError("image: JPEG needs 8-bit gray or RGB");
      }
      return Encode(mat, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95});
    case ImageFormat::kTiff:
      return Encode(mat, ".tif", {});
  }
  return absl::InvalidArgumentError("image: unknown format");
}

absl::StatusOr<std::string> EncodePng(const Image &image) {
  return EncodeImage(image, ImageFormat::kPng);
}

absl::StatusOr<std::string> EncodePng(const Mask &mask) {
  RETURN_IF_ERROR(ValidateMask(mask));
  Image image;
  image.height = mask.height;
  image.width = mask.width;
  image.channels = 1;
  image.bytes = mask.ids;
  return EncodeImage(image, ImageFormat::kPng);
}

absl::StatusOr<ImageFormat> FormatFromPath(std::string_view path) {
  const size_t dot = path.rfind('.');
  const std::string ext =
      dot == std::string_view::npos ? "" : absl::AsciiStrToLower(Sv(path.substr(dot + 1)));
  if (ext == "png") return ImageFormat::kPng;
  if (ext == "jpg" || ext == "jpeg") return ImageFormat::kJpeg;
  if (ext == "tif" || ext == "tiff") return ImageFormat::kTiff;
  return absl::InvalidArgumentError(
      absl::StrCat("image: '", Sv(path), "' has no .png, .jpg/.jpeg or .tif/.tiff extension"));
}

absl::StatusOr<Image> ReadImageFile(const std::string &path, int64_t max_pixels) {
  ASSIGN_OR_RETURN(const std::string bytes, common::ReadFile(path));
  absl::StatusOr<Image> image = DecodeImage(bytes, max_pixels);
  if (!image.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", image.status().message()));
  }
  return image;
}

absl::StatusOr<Mask> ReadMaskFile(const std::string &path, int64_t max_pixels) {
  ASSIGN_OR_RETURN(const std::string bytes, common::ReadFile(path));
  absl::StatusOr<Mask> mask = DecodeMask(bytes, max_pixels);
  if (!mask.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", mask.status().message()));
  }
  return mask;
}

absl::Status WriteImageFile(const std::string &path, const Image &image) {
  ASSIGN_OR_RETURN(const ImageFormat format, FormatFromPath(path));
  ASSIGN_OR_RETURN(const std::string bytes, EncodeImage(image, format));
  return common::WriteFileAtomically(path, bytes);
}

absl::Status WriteMaskFile(const std::string &path, const Mask &mask) {
  ASSIGN_OR_RETURN(const std::string bytes, EncodePng(mask));
  return common::WriteFileAtomically(path, bytes);
}

}  // namespace segserve::data
