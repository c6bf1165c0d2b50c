#include "server/scheduler/sweep.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace segserve::scheduler {
namespace {

nlohmann::json EmbedJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? nlohmann::json(text) : j;
}

}  // namespace

SweepOutcome SweepOutcomeOf(const std::vector<Job>& children, bool cancel_requested) {
  SweepOutcome outcome;
  int finished = 0;
  std::vector<std::string> failures;
  for (const Job& child : children) {
    if (!IsTerminal(child.state)) continue;
    ++finished;
    if (child.state != JobState::kSucceeded) {
      std::string line = absl::StrCat(child.id, " ", JobStateName(child.state));
      if (!child.reason.empty()) absl::StrAppend(&line, ": ", child.reason);
      failures.push_back(std::move(line));
    }
  }
  outcome.progress.fraction =
      children.empty() ? 1.0 : static_cast<double>(finished) / children.size();
  outcome.finished = finished == static_cast<int>(children.size());
  if (!outcome.finished) return outcome;
  if (cancel_requested) {
    outcome.state = JobState::kCancelled;
    outcome.reason = "cancelled by request";
  } else if (failures.empty()) {
    outcome.state = JobState::kSucceeded;
  } else {
    outcome.state = JobState::kFailed;
    outcome.reason = absl::StrCat(failures.size(), " of ", children.size(),
                                  " children did not succeed: ", absl::StrJoin(failures, "; "));
  }
  return outcome;
}

std::string SweepResultJson(const std::vector<Job>& children) {
  nlohmann::json rows = nlohmann::json::array();
  int succeeded = 0, failed = 0, cancelled = 0;
  for (const Job& child : children) {
    succeeded += child.state == JobState::kSucceeded;
    failed += child.state == JobState::kFailed;
    cancelled += child.state == JobState::kCancelled;
    rows.push_back({{"job_id", child.id},
                    {"state", JobStateName(child.state)},
                    {"reason", child.reason},
                    {"spec", EmbedJson(child.spec_json)},
                    {"result", EmbedJson(child.result_json)}});
  }
  nlohmann::json table = {
      {"rows", rows}, {"succeeded", succeeded}, {"failed", failed}, {"cancelled", cancelled}};
  return table.dump();
}

std::string ExperimentResultJson(const std::vector<Job>& children, const std::string& report_json) {
  nlohmann::json table = nlohmann::json::parse(SweepResultJson(children));
  table["report"] = EmbedJson(report_json);
  return table.dump();
}

}  // namespace segserve::scheduler
