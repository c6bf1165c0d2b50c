#include "server/susceptibility/report_json.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace segserve::susceptibility {
namespace {

using nlohmann::json;

json Num(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

absl::StatusOr<double> GetNum(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": missing"));
  const json& v = j.at(key);
  if (v.is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!v.is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": not a number"));
  }
  return v.get<double>();
}

}  // namespace

json ReportToJson(const SusceptibilityReport& report, bool per_channel) {
  json layers = json::array();
  for (const LayerStats& l : report.layers) {
    json o = {{"layer", l.layer},
              {"channels", l.channels},
              {"mean", Num(l.mean)},
              {"median", Num(l.median)},
              {"max", Num(l.max)},
              {"null_mean", Num(l.null_mean)},
              {"null_median", Num(l.null_median)},
              {"null_max", Num(l.null_max)}};
    if (per_channel) {
      json pc = json::array();
      for (double v : l.per_channel) pc.push_back(Num(v));
      o["per_channel"] = std::move(pc);
    }
    layers.push_back(std::move(o));
  }
  return {{"model", {{"name", report.model_name}, {"version", report.model_version}}},
          {"source_images", report.source_images},
          {"target_images", report.target_images},
          {"bins", report.bins},
          {"auto_bins", report.auto_bins},
          {"layers", std::move(layers)}};
}

absl::StatusOr<SusceptibilityReport> ReportFromJson(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("report: not an object");
  SusceptibilityReport r;
  try {
    r.model_name = j.at("model").at("name").get<std::string>();
    r.model_version = j.at("model").at("version").get<int64_t>();
    r.source_images = j.at("source_images").get<int64_t>();
    r.target_images = j.at("target_images").get<int64_t>();
    r.bins = j.at("bins").get<int>();
    r.auto_bins = j.value("auto_bins", false);
    for (const json& l : j.at("layers")) {
      LayerStats s;
      s.layer = l.at("layer").get<std::string>();
      s.channels = l.at("channels").get<int>();
      const std::string where = "report.layers[" + s.layer + "]";
      ASSIGN_OR_RETURN(s.mean, GetNum(l, "mean", where));
      ASSIGN_OR_RETURN(s.median, GetNum(l, "median", where));
      ASSIGN_OR_RETURN(s.max, GetNum(l, "max", where));
      ASSIGN_OR_RETURN(s.null_mean, GetNum(l, "null_mean", where));
      ASSIGN_OR_RETURN(s.null_median, GetNum(l, "null_median", where));
      ASSIGN_OR_RETURN(s.null_max, GetNum(l, "null_max", where));
      if (l.contains("per_channel")) {
        for (const json& v : l.at("per_channel")) {
          s.per_channel.push_back(v.is_null() ? std::numeric_limits<double>::quiet_NaN()
                                              : v.get<double>());
        }
      }
      r.layers.push_back(std::move(s));
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("report: ", e.what()));
  }
  return r;
}

json ReportsToJson(const std::vector<SusceptibilityReport>& reports, bool per_channel) {
  json arr = json::array();
  for (const auto& r : reports) arr.push_back(ReportToJson(r, per_channel));
  return {{"reports", std::move(arr)}};
}

absl::StatusOr<std::vector<SusceptibilityReport>> ReportsFromJson(const json& j) {
  if (!j.is_object() || !j.contains("reports") || !j["reports"].is_array()) {
    return absl::InvalidArgumentError("reports: missing or not an array");
  }
  std::vector<SusceptibilityReport> out;
  for (const json& r : j["reports"]) {
    ASSIGN_OR_RETURN(SusceptibilityReport report, ReportFromJson(r));
    out.push_back(std::move(report));
  }
  return out;
}

std::string FormatReport(const SusceptibilityReport& report) {
  std::string out = absl::StrCat(report.model_name, " v", report.model_version, ": ",
                                 report.source_images, " source vs ", report.target_images,
                                 " target images, ", report.bins, " bins",
                                 report.auto_bins ? " (auto)" : "", "\n");
  for (const LayerStats& l : report.layers) {
    char line[160];
    std::snprintf(line, sizeof(line), "  %-16s %.2f (null %.2f)  median %.2f  max %.2f\n",
                  (l.layer + ":").c_str(), l.mean, l.null_mean, l.median, l.max);
    out += line;
  }
  return out;
}

}  // namespace segserve::susceptibility
