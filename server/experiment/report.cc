#include "server/experiment/report.h"

#include <algorithm>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/common/file_util.h"
#include "server/experiment/stats.h"
#include "server/experiment/susceptibility_report.h"
#include "server/training/train_spec.h"

namespace segserve::experiment {
namespace {

using nlohmann::json;

constexpr char kMethod[] =
    "Per configuration (encoder, prune level) over seeds: mean, sample standard deviation "
    "(n-1) and a 95% confidence interval of the mean, mean +/- t(0.975, n-1) * sd / sqrt(n) "
    "(Student t, exact for n-1 <= 30, normal quantile beyond; no interval for n < 2). Paired "
    "differences: each seed's model minus the L0 model of the same encoder and seed, "
    "summarised the same way, with the number of seeds where the level is better. "
    "shift_mean: mean IoU over the requested levels of a shift kind; retained: shift_mean / "
    "in-domain test IoU, per seed, then summarised. IoU: mean foreground IoU over the split "
    "(pixel counts pooled over images).";

// Per-seed values of one configuration.
struct Cell {
  std::string encoder;
  int level = 0;
  SeedValues test;
  SeedValues test_bf16;  // the test split served in bf16 (TrainSpec::bf16_check)
  std::map<std::string, SeedValues> test_class;
  std::map<std::string, std::map<int, SeedValues>> shift;  // kind -> level -> seeds
  std::map<std::string, SeedValues> shift_mean, retained;  // kind -> seeds
  SeedValues shift_mean_all, retained_all;
};

std::string LevelKey(int level) { return absl::StrCat(level); }

std::vector<double> Values(const SeedValues& v) {
  std::vector<double> out;
  for (const auto& [seed, value] : v) out.push_back(value);
  return out;
}

json SummaryOf(const SeedValues& v) { return SummaryJson(Summarize(Values(v))); }

// Seeds present in every one of `maps`' level entries: the per-seed mean over them.
SeedValues MeanOverLevels(const std::vector<const SeedValues*>& levels) {
  SeedValues out;
  if (levels.empty()) return out;
  for (const auto& [seed, unused] : *levels.front()) {
    double sum = 0;
    bool complete = true;
    for (const SeedValues* v : levels) {
      auto it = v->find(seed);
      if (it == v->end()) {
        complete = false;
        break;
      }
      sum += it->second;
    }
    if (complete) out[seed] = sum / levels.size();
  }
  return out;
}

SeedValues Retained(const SeedValues& shift_mean, const SeedValues& test) {
  SeedValues out;
  for (const auto& [seed, mean] : shift_mean) {
    auto it = test.find(seed);
    if (it == test.end()) continue;
    Robustness r = RobustnessOf(it->second, {mean});
    if (r.retained) out[seed] = *r.retained;
  }
  return out;
}

std::string ShiftScope(const ExperimentSpec& spec) {
  return absl::StrCat(absl::StrJoin(spec.shifts, ", "), " at levels ",
                      absl::StrJoin(spec.shift_levels, ","));
}

}  // namespace

std::string FormatSummary(const json& s) {
  if (s.value("n", 0) == 0) return "no data";
  if (!s.value("interval", false)) {
    return absl::StrFormat("%.3f (n=1, no interval)", s.value("mean", 0.0));
  }
  return absl::StrFormat("%.3f ± %.3f (n=%d)", s.value("mean", 0.0), s.value("half_width", 0.0),
                         s.value("n", 0));
}

std::string Verdict(const json& p, const std::string& higher, const std::string& lower) {
  if (p.value("pairs", 0) == 0) return "no paired seeds";
  if (!p.value("interval", false)) return "not resolved (one seed gives no interval)";
  if (p.value("ci95_low", 0.0) > 0) return higher + " (95% interval above 0)";
  if (p.value("ci95_high", 0.0) < 0) return lower + " (95% interval below 0)";
  return "not resolved at this number of seeds (the 95% interval includes 0)";
}

std::string FormatDifference(const json& p) {
  if (p.value("pairs", 0) == 0) return "no paired seeds";
  std::string text =
      p.value("interval", false)
          ? absl::StrFormat("%+.3f ± %.3f", p.value("mean", 0.0), p.value("half_width", 0.0))
          : absl::StrFormat("%+.3f (no interval)", p.value("mean", 0.0));
  return absl::StrCat(text, " (", p.value("better", 0), " of ", p.value("pairs", 0),
                      " seeds better)");
}

absl::StatusOr<json> BuildReport(const ExperimentSpec& spec,
                                 const std::vector<scheduler::Job>& children) {
  std::map<std::pair<std::string, int>, Cell> cells;
  for (const std::string& encoder : spec.encoders) {
    for (int level : spec.prune_levels) {
      Cell& cell = cells[{encoder, level}];
      cell.encoder = encoder;
      cell.level = level;
    }
  }
  SusceptibilityTable susceptibility;
  json models = json::array();
  int succeeded = 0, failed = 0, cancelled = 0;
  for (const scheduler::Job& child : children) {
    absl::StatusOr<training::TrainSpec> ts = training::TrainSpecFromJsonString(child.spec_json);
    if (!ts.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("child ", child.id, " has no training spec: ", ts.status().message()));
    }
    const bool ok = child.state == scheduler::JobState::kSucceeded;
    succeeded += ok;
    failed += child.state == scheduler::JobState::kFailed;
    cancelled += child.state == scheduler::JobState::kCancelled;
    json model = {{"job_id", child.id},
                  {"state", scheduler::JobStateName(child.state)},
                  {"encoder", ts->encoder},
                  {"prune_level", ts->prune_level},
                  {"seed", ts->seed}};
    json result = json::parse(child.result_json, nullptr, false);
    if (!ok || !result.is_object()) {
      if (!child.reason.empty()) model["reason"] = child.reason;
      models.push_back(model);
      continue;
    }
    Cell& cell = cells[{ts->encoder, ts->prune_level}];
    cell.encoder = ts->encoder;
    cell.level = ts->prune_level;
    model["model_name"] = result.value("model_name", "");
    model["model_version"] = result.value("model_version", int64_t{0});
    if (auto it = result.find("test_iou"); it != result.end() && it->is_number()) {
      model["test_iou"] = *it;
      cell.test[ts->seed] = it->get<double>();
    }
    if (auto it = result.find("test_iou_bf16"); it != result.end() && it->is_number()) {
      model["test_iou_bf16"] = *it;
      cell.test_bf16[ts->seed] = it->get<double>();
    }
    json classes = json::object();
    if (auto it = result.find("test_class_iou"); it != result.end() && it->is_object()) {
      for (const auto& [name, iou] : it->items()) {
        if (!iou.is_number()) continue;
        classes[name] = iou;
        cell.test_class[name][ts->seed] = iou.get<double>();
      }
    }
    model["test_class_iou"] = classes;
    json shift = json::object();
    const json cross = result.value("cross_domain_iou", json::object());
    for (const std::string& kind : spec.shifts) {
      for (int level : spec.shift_levels) {
        const std::string label = absl::StrCat(kind, ":", level);
        auto it = cross.find(label);
        if (it == cross.end() || !it->is_number()) continue;
        shift[kind][LevelKey(level)] = *it;
        cell.shift[kind][level][ts->seed] = it->get<double>();
      }
    }
    model["shift_iou"] = shift;
    if (auto it = result.find("susceptibility"); it != result.end()) {
      model["susceptibility"] = ModelSusceptibility(*it);
      susceptibility.Add(spec, ts->encoder, ts->prune_level, ts->seed, *it);
    }
    models.push_back(model);
  }

  // Robustness per cell: per seed, then summarised.
  for (auto& [key, cell] : cells) {
    std::vector<const SeedValues*> all;
    for (const std::string& kind : spec.shifts) {
      std::vector<const SeedValues*> levels;
      for (int level : spec.shift_levels) {
        levels.push_back(&cell.shift[kind][level]);
        all.push_back(&cell.shift[kind][level]);
      }
      cell.shift_mean[kind] = MeanOverLevels(levels);
      cell.retained[kind] = Retained(cell.shift_mean[kind], cell.test);
    }
    cell.shift_mean_all = MeanOverLevels(all);
    cell.retained_all = Retained(cell.shift_mean_all, cell.test);
  }

  json cell_rows = json::array();
  json paired_rows = json::array();
  std::map<std::pair<std::string, int>, json> summaries, paired;
  for (const std::string& encoder : spec.encoders) {
    for (int level : spec.prune_levels) {
      const Cell& cell = cells[{encoder, level}];
      json row = {{"encoder", encoder}, {"prune_level", level}};
      json seeds = json::array();
      for (const auto& [seed, unused] : cell.test) seeds.push_back(seed);
      row["seeds"] = seeds;
      row["test_iou"] = SummaryOf(cell.test);
      if (!cell.test_bf16.empty()) {
        row["test_iou_bf16"] = SummaryOf(cell.test_bf16);
        // Paired by model: the same weights served in bf16 minus fp32; and the worst drop.
        row["bf16_minus_fp32"] = PairedJson(PairedDiff(cell.test_bf16, cell.test));
        double worst = 0;
        for (const auto& [seed, bf16] : cell.test_bf16) {
          if (auto f = cell.test.find(seed); f != cell.test.end()) {
            worst = std::max(worst, f->second - bf16);
          }
        }
        row["bf16_max_drop"] = worst;
      }
      row["test_class_iou"] = json::object();
      for (const auto& [name, values] : cell.test_class)
        row["test_class_iou"][name] = SummaryOf(values);
      row["shift_iou"] = json::object();
      row["shift_mean"] = json::object();
      row["retained"] = json::object();
      for (const std::string& kind : spec.shifts) {
        for (int l : spec.shift_levels) {
          row["shift_iou"][kind][LevelKey(l)] = SummaryOf(cell.shift.at(kind).at(l));
        }
        row["shift_mean"][kind] = SummaryOf(cell.shift_mean.at(kind));
        row["retained"][kind] = SummaryOf(cell.retained.at(kind));
      }
      row["shift_mean_all"] = SummaryOf(cell.shift_mean_all);
      row["retained_all"] = SummaryOf(cell.retained_all);
      summaries[{encoder, level}] = row;
      cell_rows.push_back(row);

      auto base_it = cells.find({encoder, 0});
      if (level == 0 || base_it == cells.end()) continue;
      const Cell& base = base_it->second;
      json p = {{"encoder", encoder}, {"prune_level", level}};
      p["test_iou"] = PairedJson(PairedDiff(cell.test, base.test));
      p["shift_iou"] = json::object();
      p["shift_mean"] = json::object();
      for (const std::string& kind : spec.shifts) {
        for (int l : spec.shift_levels) {
          p["shift_iou"][kind][LevelKey(l)] =
              PairedJson(PairedDiff(cell.shift.at(kind).at(l), base.shift.at(kind).at(l)));
        }
        p["shift_mean"][kind] =
            PairedJson(PairedDiff(cell.shift_mean.at(kind), base.shift_mean.at(kind)));
      }
      p["shift_mean_all"] = PairedJson(PairedDiff(cell.shift_mean_all, base.shift_mean_all));
      paired[{encoder, level}] = p;
      paired_rows.push_back(p);
    }
  }

  // Findings: one line per research question and encoder, never more than the numbers carry.
  json findings = json::array();
  const bool shifted = !spec.shifts.empty();
  const json rq1 = susceptibility.Findings(spec);
  for (const std::string& encoder : spec.encoders) {
    if (rq1.empty()) {
      findings.push_back({{"question", "RQ1"},
                          {"encoder", encoder},
                          {"text",
                           "RQ1 (which layers the shift hits): not measured: the experiment "
                           "names no susceptibility targets (spec.susceptibility)."}});
    }
    for (const json& line : rq1) {
      if (line["encoder"] == encoder) findings.push_back(line);
    }
    auto l1 = paired.find({encoder, 1});
    if (l1 == paired.end()) {
      findings.push_back({{"question", "RQ2"},
                          {"encoder", encoder},
                          {"text", "RQ2 (L1 vs L0): not answered: the grid lacks L0 or L1."}});
    } else {
      const json& p = l1->second;
      std::string text = absl::StrCat(
          "RQ2 (", encoder, ") L1 - L0 in-domain test IoU: ", FormatDifference(p["test_iou"]), ": ",
          Verdict(p["test_iou"], "L1 higher", "L1 lower"), ".");
      if (shifted) {
        absl::StrAppend(&text, " Cross-domain (mean over ", ShiftScope(spec),
                        "): ", FormatDifference(p["shift_mean_all"]), ": ",
                        Verdict(p["shift_mean_all"], "L1 higher", "L1 lower"), ".");
      }
      findings.push_back({{"question", "RQ2"}, {"encoder", encoder}, {"text", text}});
    }
    if (spec.prune_levels.size() < 2) {
      findings.push_back({{"question", "RQ3"},
                          {"encoder", encoder},
                          {"text", "RQ3 (best level): one prune level only; nothing to compare."}});
      continue;
    }
    // Rank levels by the cross-domain mean (in-domain when no shift was requested).
    const char* metric = shifted ? "shift_mean_all" : "test_iou";
    std::vector<std::pair<double, int>> ranked;
    for (int level : spec.prune_levels) {
      const json& s = summaries[{encoder, level}][metric];
      if (s.value("n", 0) > 0) ranked.push_back({s.value("mean", 0.0), level});
    }
    std::sort(ranked.rbegin(), ranked.rend());
    if (ranked.size() < 2) {
      findings.push_back({{"question", "RQ3"},
                          {"encoder", encoder},
                          {"text", "RQ3 (best level): fewer than two levels have results."}});
      continue;
    }
    const int best = ranked[0].second, second = ranked[1].second;
    const Cell& b = cells[{encoder, best}];
    const Cell& r = cells[{encoder, second}];
    const json d = PairedJson(shifted ? PairedDiff(b.shift_mean_all, r.shift_mean_all)
                                      : PairedDiff(b.test, r.test));
    findings.push_back(
        {{"question", "RQ3"},
         {"encoder", encoder},
         {"text", absl::StrCat("RQ3 (", encoder, ") highest mean ",
                               shifted ? "cross-domain IoU" : "in-domain test IoU", ": L", best,
                               " ", FormatSummary(summaries[{encoder, best}][metric]), "; L", best,
                               " - L", second, " (runner-up): ", FormatDifference(d), ": ",
                               Verdict(d, absl::StrCat("L", best, " best"),
                                       absl::StrCat("L", second, " better")),
                               ".")}});
  }

  // Whether bf16 serving is safe for these models (TrainSpec::bf16_check).
  for (const json& row : cell_rows) {
    if (!row.contains("bf16_minus_fp32")) continue;
    const json& d = row["bf16_minus_fp32"];
    findings.push_back(
        {{"question", "bf16"},
         {"encoder", row["encoder"]},
         {"text",
          absl::StrFormat(
              "bf16 serving (%s L%d): test IoU bf16 - fp32 %s; largest drop of one model %.4f "
              "(segserve --precision=auto serves bf16 when a model's drop is at most "
              "--bf16_max_iou_drop, default 0.01).",
              row["encoder"].get<std::string>(), row["prune_level"].get<int>(), FormatDifference(d),
              row["bf16_max_drop"].get<double>())}});
  }

  return json{{"version", kReportVersion},
              {"method", kMethod},
              {"spec", ExperimentSpecToJson(spec)},
              {"children",
               {{"total", children.size()},
                {"succeeded", succeeded},
                {"failed", failed},
                {"cancelled", cancelled}}},
              {"models", models},
              {"cells", cell_rows},
              {"paired_vs_l0", paired_rows},
              {"susceptibility", susceptibility.Entries(spec)},
              {"findings", findings}};
}

absl::StatusOr<std::string> BuildAndStoreReport(const std::string& data_dir,
                                                const scheduler::Job& parent,
                                                const std::vector<scheduler::Job>& children) {
  const json spec_json = json::parse(parent.spec_json, nullptr, false);
  absl::StatusOr<ExperimentSpec> spec = ExperimentSpecFromJson(spec_json);
  if (!spec.ok()) return spec.status();
  absl::StatusOr<json> report = BuildReport(*spec, children);
  if (!report.ok()) return report.status();
  report->emplace("job_id", parent.id);
  const std::string dir = absl::StrCat(data_dir, "/runs/", parent.id);
  if (absl::Status s = common::MakeDirectories(dir); !s.ok()) return s;
  const std::string text = report->dump(2);
  if (absl::Status s = common::WriteFileAtomically(dir + "/report.json", text); !s.ok()) return s;
  return text;
}

}  // namespace segserve::experiment
