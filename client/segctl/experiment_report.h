// File: client/segctl/experiment_report.h — an experiment's report JSON (server/experiment/
// report.h) as Markdown: the set-up, the method, tables of mean ± 95% half-width per prune
// level (in-domain, per class, per shift kind and level, robustness), the paired L-vs-L0 lines,
// the findings and the per-model table. Pure, so it is tested without a server.
#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace segserve::segctl {

std::string RenderExperimentMarkdown(const nlohmann::json& report);

}  // namespace segserve::segctl
