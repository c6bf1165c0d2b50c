#include "client/segctl/susceptibility_plot.h"

#include <algorithm>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace segserve::segctl {

void FinishHellingerPanel(plot::Panel& panel, double y_max) {
  panel.y_min = 0;
  panel.y_max = std::min(1.0, std::max(0.05, 1.1 * y_max));
  plot::Series null_key;
  null_key.label = "null value";
  null_key.colour = {90, 90, 90};
  null_key.dashed = true;
  panel.legend_only.push_back(null_key);
}

absl::StatusOr<plot::Figure> SusceptibilityFigure(const v1::SusceptibilityReport& report) {
  std::vector<std::string> layers;
  std::map<std::string, double> index;
  for (const auto& model : report.models()) {
    for (const auto& layer : model.layers()) {
      if (index.emplace(layer.layer(), static_cast<double>(layers.size())).second) {
        layers.push_back(layer.layer());
      }
    }
  }
  if (layers.empty()) return absl::InvalidArgumentError("the report has no layers to plot");
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

  plot::Panel panel;
  panel.x_label = "layer";
  panel.y_label = "mean Hellinger distance";
  panel.x_categories = layers;
  panel.vertical_categories = true;
  panel.legend = plot::LegendPosition::kOutsideRight;
  double y_max = 0;
  int i = 0;
  for (const auto& model : report.models()) {
    plot::Series line, null;
    line.label = absl::StrCat(model.model_name(), ":", model.model_version());
    line.colour = null.colour = plot::SeriesColour(i);
    line.marker = plot::SeriesMarker(i);
    null.dashed = true;
    line.x.assign(layers.size(), 0);
    line.y.assign(layers.size(), kNaN);
    for (size_t l = 0; l < layers.size(); ++l) line.x[l] = static_cast<double>(l);
    null.x = line.x;
    null.y = line.y;
    for (const auto& layer : model.layers()) {
      const size_t l = static_cast<size_t>(index[layer.layer()]);
      line.y[l] = layer.mean();
      if (layer.null_mean() >= 0) null.y[l] = layer.null_mean();
      y_max = std::max({y_max, layer.mean(), layer.null_mean()});
    }
    panel.series.push_back(std::move(line));
    panel.series.push_back(std::move(null));
    ++i;
  }
  FinishHellingerPanel(panel, y_max);

  plot::Figure figure;
  figure.width = 1100;
  figure.height = 620;
  figure.title = "Hellinger distance per layer (mean over channels)";
  figure.subtitle = absl::StrCat(report.source_images(), " source vs ", report.target_images(),
                                 " target images, ", report.bins(),
                                 " bins; dashed: null value (two halves of the source set)");
  figure.panels.push_back(std::move(panel));
  return figure;
}

absl::Status WriteSusceptibilityPlot(const v1::SusceptibilityReport& report,
                                     const std::string& path) {
  ASSIGN_OR_RETURN(plot::Figure figure, SusceptibilityFigure(report));
  return plot::WritePng(figure, path);
}

}  // namespace segserve::segctl
