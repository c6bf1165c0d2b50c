#include "server/data/codec.h"

#include <string>
#include <tuple>

#include "gtest/gtest.h"

namespace segserve::data {
namespace {

Image Gradient(int h, int w, int c, PixelDepth depth) {
  Image image = Image::Create(h, w, c, depth);
  for (size_t i = 0; i < image.num_samples(); ++i) {
    image.SetNormalized(i, static_cast<float>((i * 37) % 101) / 100.0f);
  }
  return image;
}

using ProbeCase = std::tuple<ImageFormat, int /*channels*/, PixelDepth>;

class ProbeTest : public ::testing::TestWithParam<ProbeCase> {};

TEST_P(ProbeTest, HeaderMatchesEncodedImageAndDecodeRoundTrips) {
  const auto [format, channels, depth] = GetParam();
  const Image image = Gradient(24, 40, channels, depth);
  absl::StatusOr<std::string> bytes = EncodeImage(image, format);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<ImageInfo> info = ProbeImage(*bytes);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->format, format);
  EXPECT_EQ(info->width, 40);
  EXPECT_EQ(info->height, 24);
  EXPECT_EQ(info->channels, channels);
  EXPECT_EQ(info->bit_depth, depth == PixelDepth::kU16 ? 16 : 8);
  absl::StatusOr<Image> decoded = DecodeImage(*bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->channels, channels);
  EXPECT_EQ(decoded->depth, depth);
  if (format != ImageFormat::kJpeg) {
    EXPECT_EQ(*decoded,
              image);  // lossless, and RGB order survives the BGR round trip
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, ProbeTest,
                         ::testing::Values(ProbeCase{ImageFormat::kPng, 1, PixelDepth::kU8},
                                           ProbeCase{ImageFormat::kPng, 3, PixelDepth::kU8},
                                           ProbeCase{ImageFormat::kPng, 4, PixelDepth::kU8},
                                           ProbeCase{ImageFormat::kPng, 1, PixelDepth::kU16},
                                           ProbeCase{ImageFormat::kPng, 3, PixelDepth::kU16},
                                           ProbeCase{ImageFormat::kPng, 4, PixelDepth::kU16},
                                           ProbeCase{ImageFormat::kJpeg, 1, PixelDepth::kU8},
                                           ProbeCase{ImageFormat::kJpeg, 3, PixelDepth::kU8},
                                           ProbeCase{ImageFormat::kTiff, 1, PixelDepth::kU8},
                                           ProbeCase{ImageFormat::kTiff, 3, PixelDepth::kU8},
                                           ProbeCase{ImageFormat::kTiff, 4, PixelDepth::kU8},
                                           ProbeCase{ImageFormat::kTiff, 1, PixelDepth::kU16},
                                           ProbeCase{ImageFormat::kTiff, 3, PixelDepth::kU16},
                                           ProbeCase{ImageFormat::kTiff, 4, PixelDepth::kU16}));

TEST(CodecTest, RgbOrderIsKeptThroughPng) {
  Image red = Image::Create(2, 2, 3);
  for (size_t p = 0; p < 4; ++p) red.bytes[p * 3] = 255;
  const std::string png = *EncodePng(red);
  const Image back = *DecodeImage(png);
  EXPECT_EQ(back.bytes[0], 255);
  EXPECT_EQ(back.bytes[2], 0);
}

TEST(CodecTest, GarbageAndEmptyInputAreInvalidArgument) {
  for (const std::string &bytes :
       {std::string(), std::string("hello world"), std::string(1000, '\xff'),
        std::string("\x89PNG\r\n\x1a\n", 8), std::string("II*\0", 4), std::string("MM\0*", 4),
        std::string("\xff\xd8\xff", 3)}) {
    EXPECT_EQ(ProbeImage(bytes).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(DecodeImage(bytes).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(CodecTest, EveryTruncationOfValidImagesIsRefusedWithoutCrashing) {
  for (ImageFormat format : {ImageFormat::kPng, ImageFormat::kJpeg, ImageFormat::kTiff}) {
    const std::string bytes = *EncodeImage(Gradient(16, 16, 3, PixelDepth::kU8), format);
    for (size_t n = 0; n < bytes.size(); n += 7) {
      const std::string cut = bytes.substr(0, n);
      (void)ProbeImage(cut);
      absl::StatusOr<Image> image = DecodeImage(cut);
      if (image.ok()) {
        EXPECT_EQ(image->width, 16);  // some decoders pad a short tail
      }
    }
  }
}

TEST(CodecTest, CorruptedBytesNeverCrash) {
  const std::string png = *EncodeImage(Gradient(16, 16, 3, PixelDepth::kU8), ImageFormat::kPng);
  for (size_t i = 0; i < png.size(); ++i) {
    std::string bad = png;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    (void)DecodeImage(bad);
  }
}

TEST(CodecTest, DecompressionBombIsRefusedFromTheHeader) {
  std::string png = *EncodePng(Gradient(8, 8, 1, PixelDepth::kU8));
  // Rewrite IHDR to claim 100000 x 100000; the CRC is now wrong but must not
  // matter.
  const unsigned char dims[8] = {0x00, 0x01, 0x86, 0xA0, 0x00, 0x01, 0x86, 0xA0};
  png.replace(16, 8, reinterpret_cast<const char *>(dims), 8);
  absl::StatusOr<ImageInfo> info = ProbeImage(png);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->width, 100000);
  absl::StatusOr<Image> image = DecodeImage(png, 1 << 20);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(image.status().message().find("1048576"), absl::string_view::npos) << image.status();
}

TEST(CodecTest, MaxPixelsIsInclusive) {
  const std::string png = *EncodePng(Gradient(8, 8, 1, PixelDepth::kU8));
  EXPECT_TRUE(DecodeImage(png, 64).ok());
  EXPECT_FALSE(DecodeImage(png, 63).ok());
}

TEST(CodecTest, MaskRoundTripsAndRgbIsNotAMask) {
  Mask mask = Mask::Create(5, 7);
  for (size_t i = 0; i < mask.ids.size(); ++i) mask.ids[i] = static_cast<uint8_t>(i % 3);
  EXPECT_EQ(*DecodeMask(*EncodePng(mask)), mask);
  const std::string rgb = *EncodePng(Gradient(5, 7, 3, PixelDepth::kU8));
  EXPECT_EQ(DecodeMask(rgb).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CodecTest, FormatFollowsTheExtension) {
  EXPECT_EQ(*FormatFromPath("a/b.PNG"), ImageFormat::kPng);
  EXPECT_EQ(*FormatFromPath("x.jpeg"), ImageFormat::kJpeg);
  EXPECT_EQ(*FormatFromPath("x.tif"), ImageFormat::kTiff);
  EXPECT_FALSE(FormatFromPath("x.bmp").ok());
}

TEST(CodecTest, FloatImagesOnlyEncodeAsTiff) {
  EXPECT_FALSE(EncodePng(Gradient(4, 4, 1, PixelDepth::kF32)).ok());
}

}  // namespace
}  // namespace segserve::data
