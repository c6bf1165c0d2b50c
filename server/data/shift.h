// File: server/data/shift.h — graded domain shifts (brightness, contrast,
// saturation) as in Wilm et al. 2024, applied to images only (never masks),
// either baked in when a data set is generated or on the fly when a stored one
// is read.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/data/image.h"

namespace segserve::data {

enum class ShiftKind { kNone, kBrightness, kContrast, kSaturation };

inline constexpr int kMaxShiftLevel = 5;

// A shift kind at a strength level 0 (identity) .. kMaxShiftLevel (extreme).
// Factors per level (x is a sample on the [0, 1] scale, alpha is never
// touched):
//   brightness  x' = x * b        b = 1.00 0.88 0.76 0.64 0.52 0.40  (darker)
//   contrast    x' = m + (x-m)*c  c = 1.00 0.82 0.64 0.46 0.28 0.10  (m = image
//   mean
//               luminance; flatter)
//   saturation  x' = g + (x-g)*s  s = 1.00 1.40 1.80 2.20 2.60 3.00  (g = pixel
//   luminance
//               0.299R+0.587G+0.114B; more saturated; needs 3 colour channels)
// Results are clamped to [0, 1] and rounded back to integer depths; float images
// (MR slices, normalised per volume) keep their values unclamped.
struct Shift {
  ShiftKind kind = ShiftKind::kNone;
  int level = 0;

  bool is_identity() const { return kind == ShiftKind::kNone || level == 0; }
  bool operator==(const Shift &o) const { return kind == o.kind && level == o.level; }
};

// Parses "brightness:3", "contrast:0", "saturation:5", or "" / "none"
// (identity). InvalidArgument naming `field` and the accepted kinds/levels
// otherwise.
absl::StatusOr<Shift> ParseShift(std::string_view text, std::string_view field = "shift");
// "none" or "kind:level" (the inverse of ParseShift).
std::string ShiftToString(const Shift &shift);
std::string_view ShiftKindName(ShiftKind kind);

// The factor of the table above for `kind` at `level` (1.0 for kNone or level
// 0).
double ShiftFactor(ShiftKind kind, int level);

// Saturation is defined on colour: InvalidArgument "<field>: saturation needs 3
// channels; <subject> has <channels>" for a saturation shift (a level above 0) on fewer
// than 3 channels, so that a gray data set or model is never silently "shifted" by
// nothing. `subject` names whose channels they are ("data set 'mr'").
absl::Status CheckShiftChannels(const Shift &shift, int channels, std::string_view field,
                                std::string_view subject);

// Applies `shift` in place. InvalidArgument for a level outside
// 0..kMaxShiftLevel, an invalid image, or saturation on an image of fewer than 3
// channels.
absl::Status ApplyShift(const Shift &shift, Image *image);

}  // namespace segserve::data
