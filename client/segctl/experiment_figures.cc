#include "client/segctl/experiment_figures.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "client/segctl/susceptibility_plot.h"
#include "server/common/status_macros.h"

namespace segserve::segctl {
namespace {

using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kPanelWidth = 380, kPanelHeight = 440, kLegendWidth = 180;

// A summary {n, mean, ci95_low, ci95_high, interval} as one point: NaN mean without data,
// NaN interval with n = 1.
struct Point {
  double mean = kNaN, low = kNaN, high = kNaN;
};

Point PointOf(const json& s) {
  Point p;
  if (!s.is_object() || s.value("n", 0) < 1) return p;
  p.mean = s.value("mean", kNaN);
  if (s.value("interval", false)) {
    p.low = s.value("ci95_low", kNaN);
    p.high = s.value("ci95_high", kNaN);
  }
  return p;
}

void Append(plot::Series& s, double x, const Point& p) {
  s.x.push_back(x);
  s.y.push_back(p.mean);
  s.low.push_back(p.low);
  s.high.push_back(p.high);
}

std::vector<std::string> Strings(const json& a) {
  std::vector<std::string> out;
  if (!a.is_array()) return out;
  for (const json& v : a) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::vector<int> Ints(const json& a) {
  std::vector<int> out;
  if (!a.is_array()) return out;
  for (const json& v : a) {
    if (v.is_number_integer()) out.push_back(v.get<int>());
  }
  return out;
}

// The grid's encoders and prune levels: the spec's, else those the cells name.
struct Grid {
  std::vector<std::string> encoders;
  std::vector<int> levels;
};

Grid GridOf(const json& report) {
  const json spec = report.value("spec", json::object());
  Grid g{Strings(spec.value("encoders", json::array())),
         Ints(spec.value("prune_levels", json::array()))};
  std::set<std::string> encoders(g.encoders.begin(), g.encoders.end());
  std::set<int> levels(g.levels.begin(), g.levels.end());
  for (const json& c : report.value("cells", json::array())) {
    const std::string e = c.value("encoder", "");
    const int l = c.value("prune_level", 0);
    if (encoders.insert(e).second) g.encoders.push_back(e);
    if (levels.insert(l).second) g.levels.push_back(l);
  }
  std::sort(g.levels.begin(), g.levels.end());
  return g;
}

const json* FindCell(const json& report, const std::string& encoder, int level) {
  auto cells = report.find("cells");
  if (cells == report.end() || !cells->is_array()) return nullptr;
  for (const json& c : *cells) {
    if (c.value("encoder", "") == encoder && c.value("prune_level", -1) == level) return &c;
  }
  return nullptr;
}

// Colour by prune level; with several encoders, the encoder shows as marker and dash.
plot::Series StyledSeries(const Grid& grid, size_t encoder_index, size_t level_index) {
  plot::Series s;
  s.colour = plot::SeriesColour(static_cast<int>(level_index));
  s.marker =
      plot::SeriesMarker(static_cast<int>(grid.encoders.size() > 1 ? encoder_index : level_index));
  s.dashed = encoder_index % 2 == 1;
  s.label = absl::StrCat(grid.encoders.size() > 1 ? grid.encoders[encoder_index] + " " : "", "L",
                         grid.levels[level_index]);
  return s;
}

bool AnyPoint(const plot::Series& s) {
  return std::any_of(s.y.begin(), s.y.end(), [](double v) { return std::isfinite(v); });
}

}  // namespace

std::optional<plot::Figure> IouVsShiftFigure(const json& report) {
  const json spec = report.value("spec", json::object());
  const std::vector<std::string> kinds = Strings(spec.value("shifts", json::array()));
  std::vector<int> shift_levels = Ints(spec.value("shift_levels", json::array()));
  std::sort(shift_levels.begin(), shift_levels.end());
  if (kinds.empty() || shift_levels.empty()) return std::nullopt;
  const Grid grid = GridOf(report);

  plot::Figure figure;
  figure.width = kPanelWidth * static_cast<int>(kinds.size()) + kLegendWidth;
  figure.height = kPanelHeight;
  figure.font_scale = 0.9;
  figure.title = "Mean foreground IoU vs shift level";
  figure.subtitle =
      "band: 95% interval over seeds (none where one seed has results); level 0: in-domain "
      "test split";
  // series[k][i]: panel k's line of configuration i (encoder-major).
  std::vector<std::vector<plot::Series>> series(kinds.size());
  std::vector<bool> has_data(grid.encoders.size() * grid.levels.size(), false);
  for (size_t k = 0; k < kinds.size(); ++k) {
    for (size_t e = 0; e < grid.encoders.size(); ++e) {
      for (size_t l = 0; l < grid.levels.size(); ++l) {
        plot::Series s = StyledSeries(grid, e, l);
        const json* cell = FindCell(report, grid.encoders[e], grid.levels[l]);
        if (cell != nullptr) {
          Append(s, 0, PointOf(cell->value("test_iou", json::object())));
          const json by_level =
              cell->value("shift_iou", json::object()).value(kinds[k], json::object());
          for (int level : shift_levels) {
            Append(s, level, PointOf(by_level.value(absl::StrCat(level), json::object())));
          }
        }
        if (AnyPoint(s)) has_data[series[k].size()] = true;
        series[k].push_back(std::move(s));
      }
    }
  }
  if (std::none_of(has_data.begin(), has_data.end(), [](bool b) { return b; })) {
    return std::nullopt;
  }
  for (size_t k = 0; k < kinds.size(); ++k) {
    plot::Panel panel;
    panel.title = absl::StrCat(kinds[k], " shift");
    panel.x_label = "shift level";
    panel.y_label = "mean foreground IoU";
    panel.integer_x = true;
    panel.x_min = -0.3;
    panel.x_max = shift_levels.back() + 0.3;
    panel.y_min = 0;
    panel.y_max = 1;
    panel.legend = k == 0 ? plot::LegendPosition::kOutsideRight : plot::LegendPosition::kNone;
    // A configuration without any result is left out of every panel (and the legend).
    for (size_t i = 0; i < series[k].size(); ++i) {
      if (has_data[i]) panel.series.push_back(std::move(series[k][i]));
    }
    figure.panels.push_back(std::move(panel));
  }
  return figure;
}

std::optional<plot::Figure> InDomainIouFigure(const json& report) {
  const Grid grid = GridOf(report);
  if (grid.levels.empty()) return std::nullopt;
  plot::Panel panel;
  panel.x_label = "prune level (Lk: k skip connections removed, top-down)";
  panel.y_label = "mean foreground IoU (test split)";
  for (int level : grid.levels) panel.x_categories.push_back(absl::StrCat("L", level));
  for (size_t e = 0; e < grid.encoders.size(); ++e) {
    plot::Series s;
    s.label = grid.encoders[e];
    s.colour = plot::SeriesColour(static_cast<int>(e));
    s.marker = plot::SeriesMarker(static_cast<int>(e));
    s.interval = plot::IntervalStyle::kErrorBars;
    // Encoders side by side within a level, so their bars do not overlap.
    const double offset = grid.encoders.size() > 1
                              ? 0.12 * (static_cast<double>(e) - (grid.encoders.size() - 1) / 2.0)
                              : 0.0;
    for (size_t l = 0; l < grid.levels.size(); ++l) {
      const json* cell = FindCell(report, grid.encoders[e], grid.levels[l]);
      Append(s, static_cast<double>(l) + offset,
             cell != nullptr ? PointOf(cell->value("test_iou", json::object())) : Point{});
    }
    if (AnyPoint(s)) panel.series.push_back(std::move(s));  // an encoder without results: out
  }
  if (panel.series.empty()) return std::nullopt;
  panel.legend =
      panel.series.size() > 1 ? plot::LegendPosition::kBottomLeft : plot::LegendPosition::kNone;
  plot::Figure figure;
  figure.width = std::max(640, 110 * static_cast<int>(grid.levels.size()) + 200);
  figure.height = 480;
  figure.title = "In-domain test IoU per prune level";
  figure.subtitle = "error bars: 95% interval over seeds (none where one seed has results)";
  figure.panels.push_back(std::move(panel));
  return figure;
}

std::optional<plot::Figure> HellingerPerLayerFigure(const json& report) {
  const json entries = report.value("susceptibility", json::array());
  if (!entries.is_array() || entries.empty()) return std::nullopt;
  const Grid grid = GridOf(report);
  std::vector<std::string> targets, layers;
  std::set<std::string> seen_targets, seen_layers;
  for (const json& entry : entries) {
    const std::string target = entry.value("target", "");
    if (seen_targets.insert(target).second) targets.push_back(target);
    for (const json& layer : entry.value("layers", json::array())) {
      const std::string name = layer.value("layer", "");
      if (seen_layers.insert(name).second) layers.push_back(name);
    }
  }
  if (layers.empty()) return std::nullopt;
  plot::Figure figure;
  figure.width = 480 * static_cast<int>(targets.size()) + kLegendWidth + 40;
  figure.height = 600;
  figure.font_scale = 0.9;
  figure.title = "Hellinger distance per layer";
  figure.subtitle =
      "band: 95% interval over seeds; dashed: null value (two halves of the in-domain set)";
  for (size_t t = 0; t < targets.size(); ++t) {
    plot::Panel panel;
    panel.title = targets[t].empty() ? "target" : absl::StrCat("target ", targets[t]);
    panel.y_label = "Hellinger distance";
    panel.x_label = "layer";
    panel.x_categories = layers;
    panel.vertical_categories = true;
    panel.legend = t == 0 ? plot::LegendPosition::kOutsideRight : plot::LegendPosition::kNone;
    double y_max = 0;
    for (const json& entry : entries) {
      if (entry.value("target", "") != targets[t]) continue;
      const auto e =
          std::find(grid.encoders.begin(), grid.encoders.end(), entry.value("encoder", "")) -
          grid.encoders.begin();
      const auto l =
          std::find(grid.levels.begin(), grid.levels.end(), entry.value("prune_level", -1)) -
          grid.levels.begin();
      if (static_cast<size_t>(e) >= grid.encoders.size() ||
          static_cast<size_t>(l) >= grid.levels.size()) {
        continue;
      }
      plot::Series line = StyledSeries(grid, e, l);
      plot::Series null = line;
      null.label.clear();
      null.marker.clear();
      null.dashed = true;
      const json entry_layers = entry.value("layers", json::array());
      std::map<std::string, const json*> by_layer;  // points into entry_layers
      for (const json& layer : entry_layers) {
        by_layer[layer.value("layer", "")] = &layer;
      }
      for (size_t i = 0; i < layers.size(); ++i) {
        auto it = by_layer.find(layers[i]);
        const Point h = it != by_layer.end()
                            ? PointOf(it->second->value("hellinger", json::object()))
                            : Point{};
        const Point n =
            it != by_layer.end() ? PointOf(it->second->value("null", json::object())) : Point{};
        Append(line, static_cast<double>(i), h);
        null.x.push_back(static_cast<double>(i));
        null.y.push_back(n.mean);
        for (double v : {h.mean, h.high, n.mean}) {
          if (std::isfinite(v)) y_max = std::max(y_max, v);
        }
      }
      panel.series.push_back(std::move(line));
      panel.series.push_back(std::move(null));
    }
    FinishHellingerPanel(panel, y_max);
    figure.panels.push_back(std::move(panel));
  }
  return figure;
}

absl::StatusOr<FiguresWritten> WriteExperimentFigures(const json& report, const std::string& dir) {
  FiguresWritten out;
  auto write = [&](const std::optional<plot::Figure>& figure, const std::string& file,
                   const std::string& caption, const std::string& absent) -> absl::Status {
    if (!figure.has_value()) {
      out.notes.push_back(absl::StrCat("`", file, "` not drawn: ", absent));
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(plot::WritePng(*figure, absl::StrCat(dir, "/", file)));
    out.figures.push_back({file, caption});
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(write(IouVsShiftFigure(report), "iou_vs_shift.png",
                        "Mean foreground IoU against shift level, one panel per shift kind and "
                        "one line per prune level; level 0 is the in-domain test split and the "
                        "band the 95% interval over seeds (none where one seed has results).",
                        "the experiment has no shifts or no shifted results."));
  RETURN_IF_ERROR(write(InDomainIouFigure(report), "in_domain_iou.png",
                        "In-domain test IoU per prune level with 95% error bars over seeds.",
                        "no configuration has an in-domain test IoU."));
  RETURN_IF_ERROR(
      write(HellingerPerLayerFigure(report), "hellinger_per_layer.png",
            "Hellinger distance per layer between the in-domain and shifted feature distributions; "
            "dashed: the null value (two halves of the in-domain set).",
            "this report carries no per-layer susceptibility (the experiment named no "
            "susceptibility targets, its report predates them, or no model has results; "
            "`segctl susceptibility --model ... --plot FILE` draws it for chosen models)."));
  return out;
}

}  // namespace segserve::segctl
