// File: client/plot/plot.h — PNG charts for segctl's reports: panels side by side, each with
// lines (markers, an optional 95% interval as a translucent band or as error bars) and a
// legend. Drawn with PLplot's cairo PNG driver (plplot-driver-cairo); no other file includes
// PLplot. PLplot keeps global state, so figures are rendered one at a time under a mutex, each
// on a fresh PLplot stream. No display is needed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace segserve::plot {

struct Colour {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Colour& o) const { return r == o.r && g == o.g && b == o.b; }
};

// Colour i of a palette that colour-blind readers can tell apart (Okabe-Ito); wraps after 7.
Colour SeriesColour(int i);
// Marker glyph i (circle, square, triangle, diamond, ...), so series differ in shape as well.
std::string SeriesMarker(int i);

enum class IntervalStyle { kBand, kErrorBars };

// Opacity of an interval band over the white background.
inline constexpr double kBandAlpha = 0.22;

// One line. A NaN y is a missing point: nothing is drawn there and the line breaks. A point
// whose low or high is NaN has no interval (e.g. one seed): no band or bar is drawn for it.
struct Series {
  std::string label;  // legend text; empty: not in the legend
  Colour colour;
  std::string marker;  // UTF-8 glyph drawn at each point; empty: none
  bool dashed = false;
  bool line = true;               // connect consecutive points
  std::vector<double> x, y;       // same length
  std::vector<double> low, high;  // empty, or the same length as x
  IntervalStyle interval = IntervalStyle::kBand;
};

enum class LegendPosition { kNone, kTopRight, kBottomLeft, kBottomRight, kOutsideRight };

struct Panel {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  // Axis ranges; where min >= max, the range covers the data (lines and intervals) plus 5%.
  double x_min = 0, x_max = 0, y_min = 0, y_max = 0;
  // Ticks at x = 0, 1, 2, ... labelled with these instead of numbers (prune levels, layers).
  std::vector<std::string> x_categories;
  // Write the category labels perpendicular to the axis (long names such as layer names).
  bool vertical_categories = false;
  // With no categories: major ticks at integers only (shift levels).
  bool integer_x = false;
  LegendPosition legend = LegendPosition::kTopRight;
  // Extra legend lines with no series of their own (e.g. "dashed: null value").
  std::vector<Series> legend_only;
};

struct Figure {
  int width = 800, height = 500;  // pixels, 100..8000
  std::string title;              // above the panels; may be empty
  std::string subtitle;           // a second, smaller line (what bands and bars mean)
  // Left to right, equal widths. A panel whose legend is kOutsideRight has it drawn in a
  // column right of all panels (the first such panel only).
  std::vector<Panel> panels;
  double font_scale = 1.0;  // multiplies the default character height
};

// A rectangle in image pixels, origin at the top left.
struct PixelRect {
  int x = 0, y = 0, width = 0, height = 0;
};

struct Rendered {
  std::string png;                    // the PNG file's bytes
  std::vector<PixelRect> plot_areas;  // per panel: inside its axes
};

// Checks the figure (sizes, lengths) and draws it.
// FAILED_PRECONDITION when PLplot's pngcairo driver is not installed, INVALID_ARGUMENT for a
// malformed figure, INTERNAL for an error PLplot reports while drawing.
absl::StatusOr<Rendered> Render(const Figure& figure);

// Render, the PNG bytes only.
absl::StatusOr<std::string> RenderPng(const Figure& figure);

// RenderPng, then writes the bytes to `path` (replaced atomically).
absl::Status WritePng(const Figure& figure, const std::string& path);

}  // namespace segserve::plot
