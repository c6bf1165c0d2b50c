#include "client/plot/plot.h"

#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"

// PLplot last: its header #defines short names (plinit -> c_plinit, ...).
#include <plplot/plplot.h>

namespace segserve::plot {
namespace {

// PLplot's state (current stream, driver table, locale switching) is process-wide.
ABSL_CONST_INIT absl::Mutex g_plplot_mutex(absl::kConstInit);

constexpr char kDevice[] = "pngcairo";
// cmap0 entries: 0 background, 1 axes, the grid, then two per series colour (line, band).
constexpr int kPaletteSize = 256;
constexpr size_t kMaxSeries = 120;
constexpr double kLineWidth = 2.2;
constexpr double kMarkerScale = 0.55;        // marker glyphs, relative to the text height
constexpr double kLegendSampleWidth = 0.07;  // legend line samples, fraction of the viewport
constexpr double kCharWidth = 0.72;  // glyph advance / character height (DejaVu Sans, measured)

bool Finite(double v) { return std::isfinite(v); }

absl::Status ValidateSeries(const Series& s, const std::string& where) {
  if (s.x.size() != s.y.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": x has ", s.x.size(), " values, y ", s.y.size()));
  }
  if (s.low.size() != s.high.size() || (!s.low.empty() && s.low.size() != s.x.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": low/high must be empty or as long as x (", s.x.size(), ")"));
  }
  for (double x : s.x) {
    if (!Finite(x)) return absl::InvalidArgumentError(absl::StrCat(where, ": x must be finite"));
  }
  return absl::OkStatus();
}

absl::Status Validate(const Figure& f) {
  if (f.width < 100 || f.width > 8000 || f.height < 100 || f.height > 8000) {
    return absl::InvalidArgumentError(
        absl::StrCat("figure size ", f.width, "x", f.height, " is outside 100..8000 pixels"));
  }
  if (f.panels.empty()) return absl::InvalidArgumentError("a figure needs at least one panel");
  if (!(f.font_scale > 0.2 && f.font_scale < 5)) {
    return absl::InvalidArgumentError("font_scale must be in (0.2, 5)");
  }
  size_t series = 0;
  for (const Panel& panel : f.panels) series += panel.series.size() + panel.legend_only.size();
  if (series > kMaxSeries) {
    return absl::InvalidArgumentError(
        absl::StrCat("a figure has ", series, " series; at most ", kMaxSeries, " are drawn"));
  }
  for (size_t p = 0; p < f.panels.size(); ++p) {
    for (size_t s = 0; s < f.panels[p].series.size(); ++s) {
      RETURN_IF_ERROR(
          ValidateSeries(f.panels[p].series[s], absl::StrCat("panel ", p, " series ", s)));
    }
  }
  return absl::OkStatus();
}

// Indexes into PLplot's colour map 0, one per (colour, alpha) the figure uses.
class Palette {
 public:
  int Index(Colour c, double alpha) {
    const auto key = std::make_tuple(c.r, c.g, c.b, alpha);
    auto it = indexes_.find(key);
    if (it != indexes_.end()) return it->second;
    const int index = next_++;  // < kPaletteSize: Validate caps the series
    plscol0a(index, c.r, c.g, c.b, alpha);
    indexes_[key] = index;
    return index;
  }

 private:
  std::map<std::tuple<uint8_t, uint8_t, uint8_t, double>, int> indexes_;
  int next_ = 2;
};

struct Range {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  void Add(double v) {
    if (!Finite(v)) return;
    min = std::min(min, v);
    max = std::max(max, v);
  }
  // The fixed range when given, else the data's plus 5% each side (a unit range if empty).
  std::pair<double, double> Resolve(double fixed_min, double fixed_max) const {
    if (fixed_min < fixed_max) return {fixed_min, fixed_max};
    if (!(min <= max)) return {0.0, 1.0};
    const double pad = max > min ? 0.05 * (max - min) : std::max(0.5, 0.05 * std::fabs(max));
    return {min - pad, max + pad};
  }
};

// Maximal runs [begin, end) of consecutive indexes where `ok(i)` holds.
template <typename Ok>
std::vector<std::pair<size_t, size_t>> Runs(size_t n, Ok ok) {
  std::vector<std::pair<size_t, size_t>> runs;
  size_t i = 0;
  while (i < n) {
    while (i < n && !ok(i)) ++i;
    const size_t begin = i;
    while (i < n && ok(i)) ++i;
    if (i > begin) runs.emplace_back(begin, i);
  }
  return runs;
}

bool HasInterval(const Series& s, size_t i) {
  return !s.low.empty() && Finite(s.y[i]) && Finite(s.low[i]) && Finite(s.high[i]);
}

// Pixel geometry of the page, for margins measured in character heights.
struct Page {
  double width_px, height_px, char_px, font_scale;
};

void DrawIntervals(const Series& s, Palette& palette) {
  if (s.low.empty()) return;
  const int band = palette.Index(s.colour, kBandAlpha);
  const int solid = palette.Index(s.colour, 1.0);
  const auto runs = Runs(s.x.size(), [&](size_t i) { return HasInterval(s, i); });
  for (const auto& [begin, end] : runs) {
    if (s.interval == IntervalStyle::kBand && end - begin >= 2) {
      std::vector<PLFLT> px, py;
      for (size_t i = begin; i < end; ++i) {
        px.push_back(s.x[i]);
        py.push_back(s.low[i]);
      }
      for (size_t i = end; i > begin; --i) {
        px.push_back(s.x[i - 1]);
        py.push_back(s.high[i - 1]);
      }
      plcol0(band);
      plfill(static_cast<PLINT>(px.size()), px.data(), py.data());
      continue;
    }
    // Error bars, and a band's isolated interval (its neighbours have none).
    std::vector<PLFLT> px(s.x.begin() + begin, s.x.begin() + end);
    std::vector<PLFLT> lo(s.low.begin() + begin, s.low.begin() + end);
    std::vector<PLFLT> hi(s.high.begin() + begin, s.high.begin() + end);
    plcol0(s.interval == IntervalStyle::kBand ? band : solid);
    plwidth(s.interval == IntervalStyle::kBand ? 4 * kLineWidth : 1.6);
    plerry(static_cast<PLINT>(px.size()), px.data(), lo.data(), hi.data());
    plwidth(kLineWidth);
  }
}

void DrawLine(const Series& s, Palette& palette, const Page& page) {
  plcol0(palette.Index(s.colour, 1.0));
  plwidth(kLineWidth);
  pllsty(s.dashed ? 3 : 1);
  if (s.line) {
    const auto runs = Runs(s.x.size(), [&](size_t i) { return Finite(s.y[i]); });
    for (const auto& [begin, end] : runs) {
      if (end - begin < 2) continue;
      std::vector<PLFLT> px(s.x.begin() + begin, s.x.begin() + end);
      std::vector<PLFLT> py(s.y.begin() + begin, s.y.begin() + end);
      plline(static_cast<PLINT>(px.size()), px.data(), py.data());
    }
  }
  pllsty(1);
  if (!s.marker.empty()) {
    std::vector<PLFLT> px, py;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!Finite(s.y[i])) continue;
      px.push_back(s.x[i]);
      py.push_back(s.y[i]);
    }
    // Markers are glyphs: their size is the character height.
    plschr(0, kMarkerScale * page.font_scale);
    if (!px.empty())
      plstring(static_cast<PLINT>(px.size()), px.data(), py.data(), s.marker.c_str());
    plschr(0, page.font_scale);
  }
}

std::vector<const Series*> LegendEntries(const Panel& panel) {
  std::vector<const Series*> entries;
  for (const Series& s : panel.series) {
    if (!s.label.empty()) entries.push_back(&s);
  }
  for (const Series& s : panel.legend_only) {
    if (!s.label.empty()) entries.push_back(&s);
  }
  return entries;
}

// Draws the legend of `panel` relative to the current viewport.
void DrawLegend(const Panel& panel, Palette& palette) {
  const std::vector<const Series*> entries = LegendEntries(panel);
  if (entries.empty() || panel.legend == LegendPosition::kNone) return;
  const size_t n = entries.size();
  std::vector<PLINT> opts(n), text_colours(n, 1), box_colours(n), box_patterns(n, 0),
      line_colours(n), line_styles(n), symbol_colours(n), symbol_numbers(n, 1);
  std::vector<PLFLT> box_scales(n, 0.8), box_widths(n, 1.0), line_widths(n, kLineWidth),
      symbol_scales(n, kMarkerScale);
  std::vector<const char*> texts(n), symbols(n);
  for (size_t i = 0; i < n; ++i) {
    const Series& s = *entries[i];
    const bool band = !s.low.empty() && s.interval == IntervalStyle::kBand;
    opts[i] = (s.line ? PL_LEGEND_LINE : 0) | (s.marker.empty() ? 0 : PL_LEGEND_SYMBOL) |
              (band ? PL_LEGEND_COLOR_BOX : 0);
    if (opts[i] == 0) opts[i] = PL_LEGEND_NONE;
    texts[i] = s.label.c_str();
    box_colours[i] = palette.Index(s.colour, kBandAlpha);
    line_colours[i] = symbol_colours[i] = palette.Index(s.colour, 1.0);
    line_styles[i] = s.dashed ? 3 : 1;
    symbols[i] = s.marker.empty() ? "" : s.marker.c_str();
  }
  PLINT position = PL_POSITION_VIEWPORT;
  PLFLT x = 0.02, y = 0.03;
  switch (panel.legend) {
    case LegendPosition::kTopRight:
      position |= PL_POSITION_INSIDE | PL_POSITION_TOP | PL_POSITION_RIGHT;
      break;
    case LegendPosition::kBottomLeft:
      position |= PL_POSITION_INSIDE | PL_POSITION_BOTTOM | PL_POSITION_LEFT;
      break;
    case LegendPosition::kBottomRight:
      position |= PL_POSITION_INSIDE | PL_POSITION_BOTTOM | PL_POSITION_RIGHT;
      break;
    case LegendPosition::kOutsideRight:
      position |= PL_POSITION_OUTSIDE | PL_POSITION_RIGHT;
      x = 0.03;
      y = 0.0;
      break;
    case LegendPosition::kNone:
      return;
  }
  PLFLT width = 0, height = 0;
  pllegend(&width, &height, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, position, x, y,
           kLegendSampleWidth, 0, 1, 1, 0, 0, static_cast<PLINT>(n), opts.data(), 0.8, 0.85, 1.8,
           0.0, text_colours.data(), texts.data(), box_colours.data(), box_patterns.data(),
           box_scales.data(), box_widths.data(), line_colours.data(), line_styles.data(),
           line_widths.data(), symbol_colours.data(), symbol_scales.data(), symbol_numbers.data(),
           symbols.data());
}

size_t LongestLabel(const std::vector<std::string>& labels) {
  size_t longest = 0;
  for (const std::string& l : labels) longest = std::max(longest, l.size());
  return longest;
}

// Width in pixels of a text of `chars` characters (a generous estimate for DejaVu Sans).
double TextPx(const Page& page, size_t chars) { return kCharWidth * page.char_px * chars; }

// Draws one panel with its plot area at the given pixel margins inside the page columns
// [x0_px, x1_px) below `top_px`; returns the plot area in image pixels.
PixelRect DrawPanel(const Panel& panel, const Page& page, double x0_px, double x1_px, double top_px,
                    Palette& palette) {
  const double ch = page.char_px;
  const double left = 6.2 * ch, right = 1.5 * ch;
  const bool vertical = !panel.x_categories.empty() && panel.vertical_categories;
  const double category_px = vertical ? TextPx(page, LongestLabel(panel.x_categories)) : 0;
  const double bottom = vertical ? category_px + 3.7 * ch : 4.0 * ch;
  const double top = top_px + (panel.title.empty() ? 1.0 : 2.4) * ch;
  const PixelRect area{static_cast<int>(std::lround(x0_px + left)),
                       static_cast<int>(std::lround(top)),
                       static_cast<int>(std::lround(x1_px - right - x0_px - left)),
                       static_cast<int>(std::lround(page.height_px - top - bottom))};
  plvpor((x0_px + left) / page.width_px, (x1_px - right) / page.width_px, bottom / page.height_px,
         1.0 - top / page.height_px);

  Range xr, yr;
  for (const Series& s : panel.series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!Finite(s.y[i])) continue;
      xr.Add(s.x[i]);
      yr.Add(s.y[i]);
      if (HasInterval(s, i)) {
        yr.Add(s.low[i]);
        yr.Add(s.high[i]);
      }
    }
  }
  auto [xmin, xmax] = xr.Resolve(panel.x_min, panel.x_max);
  if (!panel.x_categories.empty() && !(panel.x_min < panel.x_max)) {
    xmin = -0.5;
    xmax = static_cast<double>(panel.x_categories.size()) - 0.5;
  }
  const auto [ymin, ymax] = yr.Resolve(panel.y_min, panel.y_max);
  plwind(xmin, xmax, ymin, ymax);

  // Light grid first, then intervals, lines, and the axes on top.
  const bool integer_ticks = panel.integer_x || !panel.x_categories.empty();
  plcol0(palette.Index({225, 225, 225}, 1.0));
  plwidth(1.0);
  plbox("g", integer_ticks ? 1.0 : 0.0, 0, "g", 0.0, 0);
  for (const Series& s : panel.series) DrawIntervals(s, palette);
  for (const Series& s : panel.series) DrawLine(s, palette, page);

  plcol0(1);
  plwidth(1.2);
  if (panel.x_categories.empty()) {
    plbox("bcnst", integer_ticks ? 1.0 : 0.0, integer_ticks ? 1 : 0, "bcnstv", 0.0, 0);
  } else {
    plbox("bcst", 1.0, 1, "bcnstv", 0.0, 0);
    for (size_t i = 0; i < panel.x_categories.size(); ++i) {
      const double pos = (static_cast<double>(i) - xmin) / (xmax - xmin);
      if (vertical) {
        plmtex("bv", 0.7, pos, 1.0, panel.x_categories[i].c_str());
      } else {
        plmtex("b", 1.6, pos, 0.5, panel.x_categories[i].c_str());
      }
    }
  }
  const double x_label_disp = vertical ? category_px / ch + 2.3 : 2.9;
  if (!panel.x_label.empty()) plmtex("b", x_label_disp, 0.5, 0.5, panel.x_label.c_str());
  if (!panel.y_label.empty()) plmtex("l", 4.6, 0.5, 0.5, panel.y_label.c_str());
  if (!panel.title.empty()) {
    plschr(0, 1.1 * page.font_scale);
    plmtex("t", 0.8, 0.5, 0.5, panel.title.c_str());
    plschr(0, page.font_scale);
  }
  if (panel.legend != LegendPosition::kOutsideRight) DrawLegend(panel, palette);
  return area;
}

// The rendering proper; the caller holds the mutex and owns the stream.
absl::StatusOr<Rendered> RenderLocked(const Figure& figure)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_plplot_mutex) {
  PLINT stream = 0;
  plmkstrm(&stream);
  if (stream < 0) return absl::ResourceExhaustedError("PLplot has no free stream");
  // Non-fatal PLplot errors (plabort) land here instead of on stderr.
  PLINT error_code = 0;
  char error_message[1024] = "";
  plsError(&error_code, error_message);

  // With an unknown device PLplot would prompt on stdin, so check that it is there first.
  const char* menus[128];
  const char* names[128];
  int devices = 128;
  const char** menu_ptr = menus;
  const char** name_ptr = names;
  plgDevs(&menu_ptr, &name_ptr, &devices);
  bool found = false;
  for (int i = 0; i < devices; ++i) found = found || std::string(names[i]) == kDevice;
  if (!found) {
    plend1();
    const char* dir = getenv("PLPLOT_DRV_DIR");
    return absl::FailedPreconditionError(absl::StrCat(
        "PLplot's '", kDevice, "' driver is not installed (Debian package plplot-driver-cairo)",
        dir != nullptr ? absl::StrCat("; PLPLOT_DRV_DIR=", dir, " is set") : "",
        error_code != 0 ? absl::StrCat("; PLplot: ", error_message) : ""));
  }

  // The PNG goes to memory: PLplot never opens a path (an unwritable one makes it exit) and
  // closes this stream at plend1, which finalises buf/size.
  char* buf = nullptr;
  size_t size = 0;
  FILE* out = open_memstream(&buf, &size);
  if (out == nullptr) {
    plend1();
    return absl::ResourceExhaustedError("open_memstream failed");
  }
  plsdev(kDevice);
  plsfile(out);
  plspage(0, 0, figure.width, figure.height, 0, 0);
  plscmap0n(kPaletteSize);
  plscol0(0, 255, 255, 255);
  plscol0(1, 0, 0, 0);
  plinit();
  pladv(0);
  plvpor(0, 1, 0, 1);
  plwind(0, 1, 0, 1);
  PLFLT default_mm = 0, char_mm = 0;
  plschr(0, figure.font_scale);
  plgchr(&default_mm, &char_mm);
  PLFLT page_x0_mm = 0, page_x1_mm = 0, page_y0_mm = 0, page_y1_mm = 0;
  plgspa(&page_x0_mm, &page_x1_mm, &page_y0_mm, &page_y1_mm);
  const double px_per_mm =
      page_x1_mm > page_x0_mm ? figure.width / (page_x1_mm - page_x0_mm) : 72.0 / 25.4;
  const Page page{static_cast<double>(figure.width), static_cast<double>(figure.height),
                  char_mm * px_per_mm, figure.font_scale};

  Palette palette;
  double top_px = 0.3 * page.char_px;
  plcol0(1);
  if (!figure.title.empty()) {
    plschr(0, 1.2 * figure.font_scale);
    top_px += 1.6 * page.char_px;
    plmtex("t", -top_px / (1.2 * page.char_px), 0.5, 0.5, figure.title.c_str());
    plschr(0, figure.font_scale);
  }
  if (!figure.subtitle.empty()) {
    top_px += 1.5 * page.char_px;
    plmtex("t", -top_px / page.char_px, 0.5, 0.5, figure.subtitle.c_str());
  }
  if (!figure.title.empty() || !figure.subtitle.empty()) top_px += 0.4 * page.char_px;

  // One legend may sit in a column right of all panels.
  const Panel* outside = nullptr;
  for (const Panel& panel : figure.panels) {
    if (panel.legend == LegendPosition::kOutsideRight && !LegendEntries(panel).empty()) {
      outside = &panel;
      break;
    }
  }
  double legend_px = 0;
  if (outside != nullptr) {
    size_t longest = 0;
    for (const Series* s : LegendEntries(*outside)) longest = std::max(longest, s->label.size());
    legend_px = TextPx(page, longest) * 0.85 + 7.0 * page.char_px;
  }
  Rendered rendered;
  const double column = (page.width_px - legend_px) / static_cast<double>(figure.panels.size());
  for (size_t p = 0; p < figure.panels.size(); ++p) {
    plschr(0, figure.font_scale);
    rendered.plot_areas.push_back(
        DrawPanel(figure.panels[p], page, p * column, (p + 1) * column, top_px, palette));
  }
  if (outside != nullptr) DrawLegend(*outside, palette);  // right of the last viewport
  plend1();                                               // writes the PNG and closes `out`
  rendered.png.assign(buf != nullptr ? buf : "", buf != nullptr ? size : 0);
  free(buf);
  if (error_code != 0) {
    return absl::InternalError(absl::StrCat("PLplot: ", error_message));
  }
  // cairo's PNG writer reports no errors through PLplot: check the file is whole (signature
  // first, the IEND chunk and its CRC last).
  const std::string& png = rendered.png;
  if (png.size() < 20 || png.compare(1, 3, "PNG") != 0 ||
      png.compare(png.size() - 8, 4, "IEND") != 0) {
    return absl::InternalError("PLplot's pngcairo driver wrote no complete PNG");
  }
  return rendered;
}

}  // namespace

Colour SeriesColour(int i) {
  static constexpr Colour kColours[] = {{0, 114, 178},   {213, 94, 0},  {0, 158, 115},
                                        {204, 121, 167}, {230, 159, 0}, {86, 180, 233},
                                        {90, 90, 90}};
  constexpr int n = sizeof(kColours) / sizeof(kColours[0]);
  return kColours[((i % n) + n) % n];
}

std::string SeriesMarker(int i) {
  static const char* const kMarkers[] = {"●", "■", "▲", "◆", "▼", "⬟"};
  constexpr int n = sizeof(kMarkers) / sizeof(kMarkers[0]);
  return kMarkers[((i % n) + n) % n];
}

absl::StatusOr<Rendered> Render(const Figure& figure) {
  RETURN_IF_ERROR(Validate(figure));
  absl::MutexLock lock(&g_plplot_mutex);
  return RenderLocked(figure);
}

absl::StatusOr<std::string> RenderPng(const Figure& figure) {
  ASSIGN_OR_RETURN(Rendered rendered, Render(figure));
  return std::move(rendered.png);
}

absl::Status WritePng(const Figure& figure, const std::string& path) {
  ASSIGN_OR_RETURN(std::string png, RenderPng(figure));
  return common::WriteFileAtomically(path, png);
}

}  // namespace segserve::plot
