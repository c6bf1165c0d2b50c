#include "server/data/shift.h"

#include <algorithm>
#include <array>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/data/absl_compat.h"
#include "server/model_input/luma.h"

namespace segserve::data {
namespace {

constexpr std::array<double, kMaxShiftLevel + 1> kBrightness = {1.00, 0.88, 0.76, 0.64, 0.52, 0.40};
constexpr std::array<double, kMaxShiftLevel + 1> kContrast = {1.00, 0.82, 0.64, 0.46, 0.28, 0.10};
constexpr std::array<double, kMaxShiftLevel + 1> kSaturation = {1.00, 1.40, 1.80, 2.20, 2.60, 3.00};

float Luma(float r, float g, float b) { return model_input::Luma(r, g, b); }

}  // namespace

std::string_view ShiftKindName(ShiftKind kind) {
  switch (kind) {
    case ShiftKind::kNone:
      return "none";
    case ShiftKind::kBrightness:
      return "brightness";
    case ShiftKind::kContrast:
      return "contrast";
    case ShiftKind::kSaturation:
      return "saturation";
  }
  return "none";
}

absl::StatusOr<Shift> ParseShift(std::string_view text, std::string_view field) {
  const std::string lower = absl::AsciiStrToLower(Sv(text));
  if (lower.empty() || lower == "none") return Shift{};
  const size_t colon = lower.find(':');
  const std::string_view kind_text = std::string_view(lower).substr(0, colon);
  Shift shift;
  if (kind_text == "brightness") {
    shift.kind = ShiftKind::kBrightness;
  } else if (kind_text == "contrast") {
    shift.kind = ShiftKind::kContrast;
  } else if (kind_text == "saturation") {
    shift.kind = ShiftKind::kSaturation;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(field), ": unknown shift kind '", Sv(kind_text),
                     "' (expected brightness, contrast, saturation or none)"));
  }
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(field), ": '", Sv(text),
                                                   "' needs a level, as in ", Sv(kind_text),
                                                   ":3 (0..", kMaxShiftLevel, ")"));
  }
  int level = -1;
  if (!absl::SimpleAtoi(Sv(std::string_view(lower).substr(colon + 1)), &level) || level < 0 ||
      level > kMaxShiftLevel) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(field), ": level in '", Sv(text),
                                                   "' must be an integer in 0..", kMaxShiftLevel));
  }
  shift.level = level;
  return shift;
}

std::string ShiftToString(const Shift &shift) {
  if (shift.kind == ShiftKind::kNone) return "none";
  return absl::StrCat(Sv(ShiftKindName(shift.kind)), ":", shift.level);
}

double ShiftFactor(ShiftKind kind, int level) {
  if (level < 0 || level > kMaxShiftLevel) return 1.0;
  switch (kind) {
    case ShiftKind::kNone:
      return 1.0;
    case ShiftKind::kBrightness:
      return kBrightness[level];
    case ShiftKind::kContrast:
      return kContrast[level];
    case ShiftKind::kSaturation:
      return kSaturation[level];
  }
  return 1.0;
}

absl::Status CheckShiftChannels(const Shift &shift, int channels, std::string_view field,
                                std::string_view subject) {
  if (shift.kind != ShiftKind::kSaturation || shift.is_identity() || channels >= 3) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(Sv(field), ": saturation needs 3 channels; ", Sv(subject), " has ", channels));
}

absl::Status ApplyShift(const Shift &shift, Image *image) {
  if (shift.level < 0 || shift.level > kMaxShiftLevel) {
    return absl::InvalidArgumentError(
        absl::StrCat("shift: level must be in 0..", kMaxShiftLevel, " (got ", shift.level, ")"));
  }
  if (shift.is_identity()) return absl::OkStatus();
  RETURN_IF_ERROR(ValidateImage(*image));
  RETURN_IF_ERROR(CheckShiftChannels(shift, image->channels, "shift", "the image"));
  const float f = static_cast<float>(ShiftFactor(shift.kind, shift.level));
  const int c = image->channels;
  const int colour = c >= 3 ? 3 : 1;  // alpha (channel 3 or 1 of gray+alpha) untouched
  const size_t n = image->num_pixels();
  switch (shift.kind) {
    case ShiftKind::kNone:
      return absl::OkStatus();
    case ShiftKind::kBrightness:
      for (size_t p = 0; p < n; ++p) {
        for (int k = 0; k < colour; ++k) {
          const size_t i = p * c + k;
          image->SetNormalized(i, image->GetNormalized(i) * f);
        }
      }
      return absl::OkStatus();
    case ShiftKind::kContrast: {
      double sum = 0.0;
      for (size_t p = 0; p < n; ++p) {
        sum += colour == 3 ? Luma(image->GetNormalized(p * c), image->GetNormalized(p * c + 1),
                                  image->GetNormalized(p * c + 2))
                           : image->GetNormalized(p * c);
      }
      const float mean = static_cast<float>(sum / static_cast<double>(n));
      for (size_t p = 0; p < n; ++p) {
        for (int k = 0; k < colour; ++k) {
          const size_t i = p * c + k;
          image->SetNormalized(i, mean + (image->GetNormalized(i) - mean) * f);
        }
      }
      return absl::OkStatus();
    }
    case ShiftKind::kSaturation:
      for (size_t p = 0; p < n; ++p) {
        const size_t i = p * c;
        const float r = image->GetNormalized(i);
        const float g = image->GetNormalized(i + 1);
        const float b = image->GetNormalized(i + 2);
        const float y = Luma(r, g, b);
        image->SetNormalized(i, y + (r - y) * f);
        image->SetNormalized(i + 1, y + (g - y) * f);
        image->SetNormalized(i + 2, y + (b - y) * f);
      }
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace segserve::data
