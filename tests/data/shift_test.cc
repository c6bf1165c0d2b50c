#include "server/data/shift.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/data/synthetic.h"

namespace segserve::data {
namespace {

Image Smear() {
  SyntheticOptions options;
  options.size = 64;
  return GenerateSyntheticSample(7, 0, options)->image;
}

double MeanValue(const Image &im) {
  double s = 0;
  for (size_t i = 0; i < im.num_samples(); ++i) s += im.GetNormalized(i);
  return s / static_cast<double>(im.num_samples());
}

double LumaStd(const Image &im) {
  std::vector<double> y;
  for (size_t p = 0; p < im.num_pixels(); ++p) {
    y.push_back(0.299 * im.GetNormalized(3 * p) + 0.587 * im.GetNormalized(3 * p + 1) +
                0.114 * im.GetNormalized(3 * p + 2));
  }
  double m = 0, v = 0;
  for (double x : y) m += x;
  m /= y.size();
  for (double x : y) v += (x - m) * (x - m);
  return std::sqrt(v / y.size());
}

// Mean HSV saturation, S = (max - min) / max.
double MeanSaturation(const Image &im) {
  double s = 0;
  for (size_t p = 0; p < im.num_pixels(); ++p) {
    const float r = im.GetNormalized(3 * p), g = im.GetNormalized(3 * p + 1),
                b = im.GetNormalized(3 * p + 2);
    const float mx = std::max({r, g, b}), mn = std::min({r, g, b});
    s += mx > 0 ? (mx - mn) / mx : 0;
  }
  return s / static_cast<double>(im.num_pixels());
}

Image Shifted(ShiftKind kind, int level) {
  Image im = Smear();
  EXPECT_TRUE(ApplyShift({kind, level}, &im).ok());
  return im;
}

TEST(ShiftTest, ParsesKindsAndLevels) {
  EXPECT_EQ(*ParseShift("brightness:3"), (Shift{ShiftKind::kBrightness, 3}));
  EXPECT_EQ(*ParseShift("Contrast:0"), (Shift{ShiftKind::kContrast, 0}));
  EXPECT_EQ(*ParseShift("saturation:5"), (Shift{ShiftKind::kSaturation, 5}));
  EXPECT_TRUE(ParseShift("")->is_identity());
  EXPECT_TRUE(ParseShift("none")->is_identity());
  EXPECT_EQ(ShiftToString(*ParseShift("brightness:3")), "brightness:3");
}

TEST(ShiftTest, BadStringsNameTheFieldAndTheLimit) {
  for (const char *bad :
       {"brightness", "brightness:6", "brightness:-1", "hue:2", "contrast:x", "saturation:2.5"}) {
    absl::StatusOr<Shift> s = ParseShift(bad, "test_shift");
    ASSERT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.status().message().find("test_shift"), absl::string_view::npos);
  }
  EXPECT_NE(ParseShift("contrast:9").status().message().find("0..5"), absl::string_view::npos);
}

TEST(ShiftTest, LevelZeroIsIdentity) {
  for (ShiftKind k : {ShiftKind::kBrightness, ShiftKind::kContrast, ShiftKind::kSaturation}) {
    EXPECT_EQ(Shifted(k, 0), Smear());
    EXPECT_EQ(ShiftFactor(k, 0), 1.0);
  }
}

TEST(ShiftTest, BrightnessDarkensMonotonically) {
  for (int level = 1; level <= kMaxShiftLevel; ++level) {
    EXPECT_LT(MeanValue(Shifted(ShiftKind::kBrightness, level)),
              MeanValue(Shifted(ShiftKind::kBrightness, level - 1)) - 0.03)
        << level;
  }
  // The documented factor: level 5 scales by 0.40.
  EXPECT_NEAR(MeanValue(Shifted(ShiftKind::kBrightness, 5)), 0.40 * MeanValue(Smear()), 0.005);
}

TEST(ShiftTest, ContrastFlattensMonotonically) {
  for (int level = 1; level <= kMaxShiftLevel; ++level) {
    EXPECT_LT(LumaStd(Shifted(ShiftKind::kContrast, level)),
              LumaStd(Shifted(ShiftKind::kContrast, level - 1)))
        << level;
  }
  EXPECT_NEAR(LumaStd(Shifted(ShiftKind::kContrast, 5)), 0.10 * LumaStd(Smear()), 0.01);
  // Mean luminance is the pivot: it barely moves.
  EXPECT_NEAR(MeanValue(Shifted(ShiftKind::kContrast, 5)), MeanValue(Smear()), 0.02);
}

TEST(ShiftTest, SaturationIncreasesMonotonically) {
  for (int level = 1; level <= kMaxShiftLevel; ++level) {
    EXPECT_GT(MeanSaturation(Shifted(ShiftKind::kSaturation, level)),
              MeanSaturation(Shifted(ShiftKind::kSaturation, level - 1)))
        << level;
  }
}

TEST(ShiftTest, AlphaAndGrayAreHandled) {
  Image rgba = Image::Create(4, 4, 4);
  std::fill(rgba.bytes.begin(), rgba.bytes.end(), 200);
  ASSERT_TRUE(ApplyShift({ShiftKind::kBrightness, 5}, &rgba).ok());
  EXPECT_EQ(rgba.bytes[3], 200);  // alpha untouched
  EXPECT_EQ(rgba.bytes[0], 80);
  ASSERT_TRUE(ApplyShift({ShiftKind::kSaturation, 5}, &rgba).ok());
  Image gray = Image::Create(4, 4, 1, PixelDepth::kU16);
  ASSERT_TRUE(ApplyShift({ShiftKind::kBrightness, 2}, &gray).ok());
  ASSERT_TRUE(ApplyShift({ShiftKind::kContrast, 2}, &gray).ok());
  ASSERT_TRUE(ApplyShift({ShiftKind::kSaturation, 0}, &gray).ok());  // identity
}

TEST(ShiftTest, SaturationOfFewerThanThreeChannelsIsRefused) {
  for (int channels : {1, 2}) {
    Image gray = Image::Create(4, 4, channels);
    const absl::Status s = ApplyShift({ShiftKind::kSaturation, 3}, &gray);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(),
              absl::StrCat("shift: saturation needs 3 channels; the image has ", channels));
  }
  const absl::Status s =
      CheckShiftChannels({ShiftKind::kSaturation, 1}, 1, "spec.shifts[0]", "data set 'mr'");
  EXPECT_EQ(s.message(), "spec.shifts[0]: saturation needs 3 channels; data set 'mr' has 1");
  EXPECT_TRUE(CheckShiftChannels({ShiftKind::kSaturation, 1}, 3, "f", "x").ok());
  EXPECT_TRUE(CheckShiftChannels({ShiftKind::kBrightness, 5}, 1, "f", "x").ok());
}

TEST(ShiftTest, FloatSlicesAreShiftedWithoutClamping) {
  Image slice = Image::Create(1, 2, 1, PixelDepth::kF32);
  slice.SetNormalized(0, 0.5f);
  slice.SetNormalized(1, -2.0f);  // z-scored intensities may be negative
  ASSERT_TRUE(ApplyShift({ShiftKind::kBrightness, 5}, &slice).ok());
  EXPECT_FLOAT_EQ(slice.GetNormalized(0), 0.2f);
  EXPECT_FLOAT_EQ(slice.GetNormalized(1), -0.8f);
}

TEST(ShiftTest, OutOfRangeLevelIsRefused) {
  Image im = Smear();
  EXPECT_EQ(ApplyShift({ShiftKind::kContrast, 6}, &im).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segserve::data
