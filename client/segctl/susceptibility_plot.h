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

absl::Status WriteSusceptibilityPlot(const v1::SusceptibilityReport& report,
                                     const std::string& path);

}  // namespace segserve::segctl
