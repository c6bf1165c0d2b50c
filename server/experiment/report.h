// File: server/experiment/report.h — an experiment's report: every trained model's in-domain
// and shifted IoUs, their aggregation per configuration over seeds (stats.h), paired per-seed
// differences of every prune level against L0, the robustness summary, and one findings line
// per research question stated with its uncertainty. Pure: built from the children's specs
// and results (the TRAIN runner's result JSON), no file or torch access.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/experiment/experiment_spec.h"
#include "server/scheduler/job.h"

namespace segserve::experiment {

// 2: per-model and aggregated per-layer susceptibility ("susceptibility"), RQ1 from it.
inline constexpr int kReportVersion = 2;

// The report JSON (schema in docs/experiments.md):
//   {"version", "method", "spec", "children": {total, succeeded, failed, cancelled},
//    "models": [{job_id, state, encoder, prune_level, seed, model_name, model_version,
//                test_iou, test_class_iou: {class: iou}, shift_iou: {kind: {level: iou}},
//                susceptibility: {target: [{layer, hellinger, null}]}}],
//    "cells": [{encoder, prune_level, seeds: [...], test_iou: S, test_class_iou: {class: S},
//               shift_iou: {kind: {level: S}}, shift_mean: {kind: S}, retained: {kind: S},
//               shift_mean_all: S, retained_all: S}],
//    "paired_vs_l0": [{encoder, prune_level, test_iou: P, shift_iou: {kind: {level: P}},
//                      shift_mean: {kind: P}, shift_mean_all: P}],
//    "susceptibility": [{encoder, prune_level, target, layers: [{layer, hellinger: S, null: S,
//                         above_null: P}]}],   (susceptibility_report.h)
//    "findings": [{"question": "RQ1" | "RQ2" | "RQ3" | "bf16", "encoder", "text"}]}
// (RQ1 lines also carry "target", one per encoder and susceptibility target.)
// S = SummaryJson, P = PairedJson; levels are JSON object keys ("1".."5"). Only succeeded
// children contribute; a cell without any has n = 0. InvalidArgument for a child whose spec
// is not a training spec.
absl::StatusOr<nlohmann::json> BuildReport(const ExperimentSpec& spec,
                                           const std::vector<scheduler::Job>& children);

// The scheduler's experiment_report hook: parses the parent's spec, builds the report and
// writes it to <data_dir>/runs/<parent id>/report.json (atomically) before returning it.
absl::StatusOr<std::string> BuildAndStoreReport(const std::string& data_dir,
                                                const scheduler::Job& parent,
                                                const std::vector<scheduler::Job>& children);

// "+0.012 ± 0.030 (2 of 3 seeds better)" style text of a paired difference, as findings use it.
std::string FormatDifference(const nlohmann::json& paired);
// "0.412 ± 0.050 (n=3)", "0.412 (n=1, no interval)" or "no data" of a SummaryJson.
std::string FormatSummary(const nlohmann::json& summary);
// What a paired difference supports, and nothing more: `higher` / `lower` when its 95%
// interval excludes 0, else why it is not resolved.
std::string Verdict(const nlohmann::json& paired, const std::string& higher,
                    const std::string& lower);

}  // namespace segserve::experiment
