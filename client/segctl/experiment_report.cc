#include "client/segctl/experiment_report.h"

#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace segserve::segctl {
namespace {

using nlohmann::json;

// "0.812 ± 0.062", "0.812 (n=1)" or "–".
std::string Cell(const json& s) {
  if (!s.is_object() || s.value("n", 0) == 0) return "–";
  if (!s.value("interval", false)) return absl::StrFormat("%.3f (n=1)", s.value("mean", 0.0));
  return absl::StrFormat("%.3f ± %.3f", s.value("mean", 0.0), s.value("half_width", 0.0));
}

// "+0.012 ± 0.030 (2/3 better)".
std::string Paired(const json& p) {
  if (!p.is_object() || p.value("pairs", 0) == 0) return "–";
  std::string text =
      p.value("interval", false)
          ? absl::StrFormat("%+.3f ± %.3f", p.value("mean", 0.0), p.value("half_width", 0.0))
          : absl::StrFormat("%+.3f", p.value("mean", 0.0));
  return absl::StrCat(text, " (", p.value("better", 0), "/", p.value("pairs", 0), " better)");
}

std::string Row(const std::vector<std::string>& cells) {
  return absl::StrCat("| ", absl::StrJoin(cells, " | "), " |\n");
}

std::string Rule(size_t columns) {
  std::vector<std::string> dashes(columns, "---");
  return Row(dashes);
}

template <typename T>
std::string JoinArray(const json& a) {
  std::vector<std::string> parts;
  if (a.is_array()) {
    for (const auto& v : a) parts.push_back(absl::StrCat(v.get<T>()));
  }
  return parts.empty() ? "–" : absl::StrJoin(parts, ", ");
}

std::string Level(const json& row) { return absl::StrCat("L", row.value("prune_level", 0)); }

}  // namespace

std::string RenderExperimentMarkdown(const json& report, const FiguresWritten& figures) {
  std::ostringstream md;
  const json spec = report.value("spec", json::object());
  const json train = spec.value("train", json::object());
  const json shifts = spec.value("shifts", json::array());
  const json levels = spec.value("shift_levels", json::array());
  md << "# Experiment " << report.value("job_id", "") << "\n\n";
  md << "- Data set: `" << train.value("dataset", "") << "`\n";
  md << "- Encoders: " << JoinArray<std::string>(spec.value("encoders", json::array()))
     << "; prune levels: " << JoinArray<int>(spec.value("prune_levels", json::array()))
     << "; seeds: " << JoinArray<uint64_t>(spec.value("seeds", json::array())) << "\n";
  md << "- Shifts: " << JoinArray<std::string>(shifts) << " at levels " << JoinArray<int>(levels)
     << "\n";
  md << "- Epochs: " << train.value("epochs", 0) << "; batch size " << train.value("batch_size", 0)
     << "; preset: " << (spec.value("preset", "").empty() ? "none" : spec.value("preset", ""))
     << "\n";
  const json children = report.value("children", json::object());
  md << "- Trainings: " << children.value("succeeded", 0) << " of " << children.value("total", 0)
     << " succeeded";
  if (children.value("failed", 0) > 0) md << ", " << children.value("failed", 0) << " failed";
  if (children.value("cancelled", 0) > 0) {
    md << ", " << children.value("cancelled", 0) << " cancelled";
  }
  md << "\n\n";
  md << "Values are mean ± half-width of the 95% confidence interval over seeds; (n=1) has no "
        "interval.\n\n";

  md << "## Findings\n\n";
  for (const json& f : report.value("findings", json::array())) {
    md << "- " << f.value("text", "") << "\n";
  }
  md << "\n";

  if (!figures.figures.empty() || !figures.notes.empty()) {
    md << "## Figures\n\n";
    for (const FigureLink& f : figures.figures) {
      md << "![" << f.file << "](" << f.file << ")\n\n" << f.caption << "\n\n";
    }
    for (const std::string& note : figures.notes) md << "- " << note << "\n";
    if (!figures.notes.empty()) md << "\n";
  }

  const json cells = report.value("cells", json::array());
  std::set<std::string> class_names;
  for (const json& c : cells) {
    const json per_class = c.value("test_class_iou", json::object());  // items() needs an lvalue
    for (const auto& [name, unused] : per_class.items()) {
      class_names.insert(name);
    }
  }
  md << "## In-domain test IoU\n\n";
  std::vector<std::string> header = {"encoder", "level", "seeds", "test IoU (foreground mean)"};
  for (const std::string& name : class_names) header.push_back(absl::StrCat("IoU ", name));
  md << Row(header) << Rule(header.size());
  for (const json& c : cells) {
    std::vector<std::string> row = {c.value("encoder", ""), Level(c),
                                    absl::StrCat(c.value("seeds", json::array()).size()),
                                    Cell(c.value("test_iou", json::object()))};
    for (const std::string& name : class_names) {
      row.push_back(Cell(c.value("test_class_iou", json::object()).value(name, json::object())));
    }
    md << Row(row);
  }
  md << "\n";

  for (const json& kind_json : shifts) {
    const std::string kind = kind_json.get<std::string>();
    md << "## IoU under " << kind << " shift\n\n";
    std::vector<std::string> h = {"encoder", "level"};
    for (const json& l : levels) h.push_back(absl::StrCat(kind, " ", l.get<int>()));
    h.push_back("mean over levels");
    h.push_back("retained (shift mean / in-domain)");
    md << Row(h) << Rule(h.size());
    for (const json& c : cells) {
      std::vector<std::string> row = {c.value("encoder", ""), Level(c)};
      const json by_level = c.value("shift_iou", json::object()).value(kind, json::object());
      for (const json& l : levels) {
        row.push_back(Cell(by_level.value(absl::StrCat(l.get<int>()), json::object())));
      }
      row.push_back(Cell(c.value("shift_mean", json::object()).value(kind, json::object())));
      row.push_back(Cell(c.value("retained", json::object()).value(kind, json::object())));
      md << Row(row);
    }
    md << "\n";
  }
  if (!shifts.empty()) {
    md << "## Robustness over every shift\n\n";
    md << Row({"encoder", "level", "in-domain", "mean over all shifts and levels", "retained"})
       << Rule(5);
    for (const json& c : cells) {
      md << Row({c.value("encoder", ""), Level(c), Cell(c.value("test_iou", json::object())),
                 Cell(c.value("shift_mean_all", json::object())),
                 Cell(c.value("retained_all", json::object()))});
    }
    md << "\n";
  }

  const json paired = report.value("paired_vs_l0", json::array());
  if (!paired.empty()) {
    md << "## Paired differences against L0 (same encoder and seed)\n\n";
    for (const json& p : paired) {
      md << "- " << p.value("encoder", "") << " " << Level(p) << " - L0: in-domain "
         << Paired(p.value("test_iou", json::object()));
      for (const json& kind_json : shifts) {
        const std::string kind = kind_json.get<std::string>();
        md << "; " << kind << " mean "
           << Paired(p.value("shift_mean", json::object()).value(kind, json::object()));
      }
      if (!shifts.empty()) {
        md << "; all shifts " << Paired(p.value("shift_mean_all", json::object()));
      }
      md << "\n";
    }
    md << "\n";
  }

  bool bf16 = false;
  for (const json& c : cells) bf16 = bf16 || c.contains("bf16_minus_fp32");
  if (bf16) {
    md << "## Served in bf16 (the same models, test split)\n\n";
    md << Row({"encoder", "level", "test IoU fp32", "test IoU bf16", "bf16 - fp32 (paired)",
               "largest drop"})
       << Rule(6);
    for (const json& c : cells) {
      if (!c.contains("bf16_minus_fp32")) continue;
      md << Row({c.value("encoder", ""), Level(c), Cell(c.value("test_iou", json::object())),
                 Cell(c.value("test_iou_bf16", json::object())),
                 Paired(c.value("bf16_minus_fp32", json::object())),
                 absl::StrFormat("%.4f", c.value("bf16_max_drop", 0.0))});
    }
    md << "\n";
  }

  md << "## Models\n\n";
  std::vector<std::string> model_header = {"job",   "encoder", "level",   "seed",
                                           "state", "model",   "test IoU"};
  if (bf16) model_header.push_back("test IoU bf16");
  md << Row(model_header) << Rule(model_header.size());
  for (const json& m : report.value("models", json::array())) {
    const std::string model =
        m.contains("model_name")
            ? absl::StrCat(m.value("model_name", ""), " v", m.value("model_version", int64_t{0}))
            : m.value("reason", "");
    const std::string iou =
        m.contains("test_iou") ? absl::StrFormat("%.4f", m.value("test_iou", 0.0)) : "–";
    std::vector<std::string> row = {m.value("job_id", ""),
                                    m.value("encoder", ""),
                                    Level(m),
                                    absl::StrCat(m.value("seed", uint64_t{0})),
                                    m.value("state", ""),
                                    model,
                                    iou};
    if (bf16) {
      row.push_back(m.contains("test_iou_bf16")
                        ? absl::StrFormat("%.4f", m.value("test_iou_bf16", 0.0))
                        : "–");
    }
    md << Row(row);
  }
  md << "\n## Method\n\n" << report.value("method", "") << "\n";
  return md.str();
}

}  // namespace segserve::segctl
