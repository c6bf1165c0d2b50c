#include "server/experiment/susceptibility_report.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/experiment/report.h"

namespace segserve::experiment {
namespace {

using nlohmann::json;

std::vector<std::string> Targets(const ExperimentSpec& spec) {
  return spec.susceptibility.has_value() ? spec.susceptibility->targets
                                         : std::vector<std::string>{};
}

std::vector<double> Values(const SeedValues& v) {
  std::vector<double> out;
  for (const auto& [seed, value] : v) out.push_back(value);
  return out;
}

bool Finite(const json& v) { return v.is_number() && std::isfinite(v.get<double>()); }

const SeedValues& Get(const std::map<std::string, SeedValues>& m, const std::string& key) {
  static const SeedValues empty;
  auto it = m.find(key);
  return it == m.end() ? empty : it->second;
}

}  // namespace

void SusceptibilityTable::Add(const ExperimentSpec& spec, const std::string& encoder,
                              int prune_level, uint64_t seed, const json& result_susceptibility) {
  if (!result_susceptibility.is_object()) return;
  for (const std::string& target : Targets(spec)) {
    auto report = result_susceptibility.find(target);
    if (report == result_susceptibility.end() || !report->is_object()) continue;
    const json layers = report->value("layers", json::array());
    if (!layers.is_array()) continue;
    Cell& cell = cells_[{encoder, prune_level, target}];
    for (const json& layer : layers) {
      if (!layer.is_object()) continue;
      const std::string name = layer.value("layer", "");
      if (name.empty()) continue;
      if (std::find(cell.layers.begin(), cell.layers.end(), name) == cell.layers.end()) {
        cell.layers.push_back(name);
      }
      if (auto h = layer.find("mean"); h != layer.end() && Finite(*h)) {
        cell.hellinger[name][seed] = h->get<double>();
      }
      if (auto n = layer.find("null_mean"); n != layer.end() && Finite(*n)) {
        cell.null[name][seed] = n->get<double>();
      }
    }
  }
}

json SusceptibilityTable::Entries(const ExperimentSpec& spec) const {
  json entries = json::array();
  for (const std::string& encoder : spec.encoders) {
    for (int level : spec.prune_levels) {
      for (const std::string& target : Targets(spec)) {
        auto it = cells_.find({encoder, level, target});
        if (it == cells_.end() || it->second.layers.empty()) continue;
        const Cell& cell = it->second;
        json layers = json::array();
        for (const std::string& name : cell.layers) {
          const SeedValues& h = Get(cell.hellinger, name);
          const SeedValues& n = Get(cell.null, name);
          layers.push_back({{"layer", name},
                            {"hellinger", SummaryJson(Summarize(Values(h)))},
                            {"null", SummaryJson(Summarize(Values(n)))},
                            {"above_null", PairedJson(PairedDiff(h, n))}});
        }
        entries.push_back({{"encoder", encoder},
                           {"prune_level", level},
                           {"target", target},
                           {"layers", layers}});
      }
    }
  }
  return entries;
}

std::string SusceptibilityTable::LevelText(int level, const Cell& cell) {
  struct Ranked {
    std::string layer;
    Summary h;
  };
  std::vector<Ranked> ranked;
  for (const std::string& name : cell.layers) {
    const Summary h = Summarize(Values(Get(cell.hellinger, name)));
    if (h.n > 0) ranked.push_back({name, h});
  }
  if (ranked.empty()) return absl::StrCat("L", level, ": no Hellinger values");
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const Ranked& a, const Ranked& b) { return a.h.mean > b.h.mean; });
  auto value = [](const Ranked& r) { return FormatSummary(SummaryJson(r.h)); };
  std::string text = absl::StrCat("L", level, ": most shifted ", ranked[0].layer, " ",
                                  value(ranked[0]));
  std::vector<std::string> next;
  for (size_t i = 1; i < ranked.size() && i < 3; ++i) {
    next.push_back(absl::StrFormat("%s %.3f", ranked[i].layer, ranked[i].h.mean));
  }
  if (!next.empty()) absl::StrAppend(&text, ", then ", absl::StrJoin(next, ", "));
  if (ranked.size() > 3) {
    absl::StrAppendFormat(&text, "; least %s %.3f", ranked.back().layer, ranked.back().h.mean);
  }
  if (ranked.size() >= 2) {
    // The ordering of the top two as the seeds support it: paired by model.
    const json d = PairedJson(PairedDiff(Get(cell.hellinger, ranked[0].layer),
                                         Get(cell.hellinger, ranked[1].layer)));
    absl::StrAppend(&text, "; ", ranked[0].layer, " - ", ranked[1].layer, ": ",
                    FormatDifference(d), ": ",
                    Verdict(d, absl::StrCat(ranked[0].layer, " ahead"),
                            absl::StrCat(ranked[1].layer, " ahead")));
  }
  // Layers whose distance the shift lifts above what the sample size alone gives.
  int above = 0, resolved = 0;
  std::string largest_null_layer;
  Summary largest_null;
  for (const Ranked& r : ranked) {
    const SeedValues& n = Get(cell.null, r.layer);
    const PairedDifference d = PairedDiff(Get(cell.hellinger, r.layer), n);
    if (d.diff.interval) {
      ++resolved;
      if (d.diff.low() > 0) ++above;
    }
    const Summary ns = Summarize(Values(n));
    if (ns.n > 0 && (largest_null_layer.empty() || ns.mean > largest_null.mean)) {
      largest_null = ns;
      largest_null_layer = r.layer;
    }
  }
  if (resolved == 0) {
    absl::StrAppend(&text, "; above-null not resolved (one seed gives no interval)");
  } else {
    absl::StrAppend(&text, "; ", above, " of ", ranked.size(),
                    " layers above their null (95% interval of Hellinger - null above 0)");
  }
  if (!largest_null_layer.empty()) {
    absl::StrAppend(&text, "; largest null ", largest_null_layer, " ",
                    FormatSummary(SummaryJson(largest_null)));
  }
  return text;
}

json SusceptibilityTable::Findings(const ExperimentSpec& spec) const {
  json findings = json::array();
  for (const std::string& encoder : spec.encoders) {
    for (const std::string& target : Targets(spec)) {
      std::vector<std::string> parts;
      for (int level : spec.prune_levels) {
        auto it = cells_.find({encoder, level, target});
        if (it == cells_.end() || it->second.layers.empty()) continue;
        parts.push_back(LevelText(level, it->second));
      }
      const std::string head =
          absl::StrCat("RQ1 (", encoder, ", ", target, "; channel-mean Hellinger distance per "
                       "layer, test split shifted vs unshifted, mean over seeds) ");
      findings.push_back(
          {{"question", "RQ1"},
           {"encoder", encoder},
           {"target", target},
           {"text", parts.empty() ? absl::StrCat(head, "no model has results.")
                                  : absl::StrCat(head, absl::StrJoin(parts, ". "), ".")}});
    }
  }
  return findings;
}

json ModelSusceptibility(const json& result_susceptibility) {
  json out = json::object();
  if (!result_susceptibility.is_object()) return out;
  for (const auto& [target, report] : result_susceptibility.items()) {
    if (!report.is_object()) continue;
    json layers = json::array();
    for (const json& layer : report.value("layers", json::array())) {
      if (!layer.is_object()) continue;
      layers.push_back({{"layer", layer.value("layer", "")},
                        {"hellinger", layer.value("mean", json())},
                        {"null", layer.value("null_mean", json())}});
    }
    out[target] = layers;
  }
  return out;
}

}  // namespace segserve::experiment
