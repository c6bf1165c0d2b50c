// File: server/scheduler/sweep.h — how a sweep parent's outcome and comparison table
// follow from its children. Pure functions, so the rules are testable on their own.
#pragma once

#include <string>
#include <vector>

#include "server/scheduler/job.h"

namespace segserve::scheduler {

struct SweepOutcome {
  bool finished = false;  // every child is terminal.
  JobState state = JobState::kRunning;
  std::string reason;
  JobProgress progress;  // fraction = finished children / children.
};

// CANCELLED if the sweep itself was cancelled; else SUCCEEDED when every child
// succeeded; else FAILED with a reason listing each child that did not succeed.
SweepOutcome SweepOutcomeOf(const std::vector<Job>& children, bool cancel_requested);

// The comparison table as JSON, one row per child in submission order:
//   {"rows": [{"job_id", "state", "reason", "spec": <child spec>, "result": <child
//   result>}...], "succeeded": n, "failed": n, "cancelled": n}
// spec and result are embedded as JSON (as strings if not valid JSON); the api layer
// renders the rows (encoder, prune level, IoUs) from them.
std::string SweepResultJson(const std::vector<Job>& children);

// An experiment's final result: SweepResultJson's table plus "report": `report_json`
// (embedded as JSON; as a string if it is not valid JSON).
std::string ExperimentResultJson(const std::vector<Job>& children, const std::string& report_json);

}  // namespace segserve::scheduler
