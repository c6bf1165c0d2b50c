// File: client/segctl/experiment_report.h — an experiment's report JSON (server/experiment/
// report.h) as Markdown: the set-up, the method, tables of mean ± 95% half-width per prune
// level (in-domain, per class, per shift kind and level, robustness), the paired L-vs-L0 lines,
// the findings, the figures written next to it and the per-model table. Pure, so it is
// tested without a server.
#pragma once

#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace segserve::segctl {

struct FigureLink {
  std::string file;     // name inside the output directory, e.g. "iou_vs_shift.png"
  std::string caption;  // what it shows
};

// The figures written next to report.md (experiment_figures.h), and those not drawn.
struct FiguresWritten {
  std::vector<FigureLink> figures;
  std::vector<std::string> notes;  // a figure not drawn, and why
};

// With figures (or notes), a "Figures" section after the findings links and captions them.
std::string RenderExperimentMarkdown(const nlohmann::json& report,
                                     const FiguresWritten& figures = {});

}  // namespace segserve::segctl
