// File: client/segctl/experiment_figures.h — the PNG figures of an experiment report (server/
// experiment/report.h JSON): IoU vs shift level per shift kind, in-domain IoU per prune level,
// and Hellinger distance per layer when the report carries susceptibility. Builders are pure
// (report -> plot::Figure) so tests can check what is drawn; WriteExperimentFigures renders.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/plot/plot.h"
#include "client/segctl/experiment_report.h"
#include "nlohmann/json.hpp"

namespace segserve::segctl {

// One panel per shift kind, one line per encoder x prune level: mean IoU over seeds at shift
// level 0 (the in-domain test split) and each requested level, with the 95% interval as a
// band. Cells with no data are left out (NaN), n=1 cells have no band. nullopt: no shifts.
std::optional<plot::Figure> IouVsShiftFigure(const nlohmann::json& report);

// In-domain test IoU per prune level (one series per encoder) with 95% error bars.
// nullopt: no cell has a test IoU.
std::optional<plot::Figure> InDomainIouFigure(const nlohmann::json& report);

// Hellinger distance per layer, one panel per target set, one line per encoder x prune level
// with its 95% band and its null value dashed. Reads report["susceptibility"]:
//   [{"encoder", "prune_level", "target": "brightness:3",
//     "layers": [{"layer", "hellinger": <summary>, "null": <summary>}]}]
// nullopt when absent or empty (the server does not produce it yet).
std::optional<plot::Figure> HellingerPerLayerFigure(const nlohmann::json& report);

// Renders every figure the report supports into `dir` (which must exist).
absl::StatusOr<FiguresWritten> WriteExperimentFigures(const nlohmann::json& report,
                                                      const std::string& dir);

}  // namespace segserve::segctl
