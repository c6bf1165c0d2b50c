// File: server/susceptibility/report_json.h — SusceptibilityReport <-> JSON, the form stored
// as an ANALYSIS job's result and printed by tools. NaN (a null value without two source
// images) is written as JSON null and read back as NaN.
//
// {"model": {"name", "version"}, "source_images", "target_images", "bins", "auto_bins",
//  "layers": [{"layer", "channels", "mean", "median", "max", "null_mean", "null_median",
//              "null_max", "per_channel": [..]}]}
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/susceptibility/analyzer.h"

namespace segserve::susceptibility {

nlohmann::json ReportToJson(const SusceptibilityReport& report, bool per_channel = true);
// InvalidArgument naming the missing or mistyped field.
absl::StatusOr<SusceptibilityReport> ReportFromJson(const nlohmann::json& json);

// {"reports": [...]}: one report per model, the ANALYSIS job's result.
nlohmann::json ReportsToJson(const std::vector<SusceptibilityReport>& reports,
                             bool per_channel = true);
absl::StatusOr<std::vector<SusceptibilityReport>> ReportsFromJson(const nlohmann::json& json);

// "layer1: 0.85 (null 0.31)" lines, one per layer, for logs and tools.
std::string FormatReport(const SusceptibilityReport& report);

}  // namespace segserve::susceptibility
