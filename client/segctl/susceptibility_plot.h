// File: client/segctl/susceptibility_plot.h — the figure of `segctl susceptibility --plot`:
// Hellinger distance per layer, one line per model, each model's null value dashed.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/plot/plot.h"
#include "segserve/v1/susceptibility.pb.h"

namespace segserve::segctl {

// Layers on x in the order the first model lists them (later models' extra layers after);
// a null value < 0 (not computed) is left out. InvalidArgument when no model has a layer.
absl::StatusOr<plot::Figure> SusceptibilityFigure(const v1::SusceptibilityReport& report);

// What every Hellinger-per-layer panel shares (this figure and the experiment report's):
// y from 0 to 1.1x the largest value drawn (`y_max`), within [0.05, 1], and a legend entry
// saying that dashed lines are null values.
void FinishHellingerPanel(plot::Panel& panel, double y_max);

absl::Status WriteSusceptibilityPlot(const v1::SusceptibilityReport& report,
                                     const std::string& path);

}  // namespace segserve::segctl
