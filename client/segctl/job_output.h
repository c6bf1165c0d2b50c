// File: client/segctl/job_output.h — how segctl shows jobs: the `jobs list` table, one
// job's details, a sweep's comparison table, and the live WatchJob status line shared by
// `jobs watch`, `submit-train --wait` and `datasets generate --wait`.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/lib/client.h"
#include "segserve/v1/training.pb.h"

namespace segserve::segctl {

const char* JobStateName(v1::JobState state);
const char* JobKindName(v1::JobKind kind);

// One row per job: id, kind, state, progress, model, reason; columns sized to content.
void PrintJobTable(std::ostream& out, const std::vector<v1::Job>& jobs);

// A job's line, its metrics (sorted), a training's susceptibility reports, children and,
// for a sweep, the comparison table (wrapped to `width` columns).
void PrintJob(std::ostream& out, const v1::Job& job, size_t width);

// A susceptibility report: image counts, then per model a table of layers (channels, mean,
// median, max and null Hellinger distance).
void PrintSusceptibilityReport(std::ostream& out, const v1::SusceptibilityReport& report);

// The sweep comparison table; cross-domain columns sorted by shift kind and level, then
// other data sets by name.
void PrintSweepTable(std::ostream& out, const v1::Job& job, size_t width);

// Cross-domain labels in column order ("brightness:1" < "brightness:4" < "contrast:2" <
// "other-set").
std::vector<std::string> SortedCrossDomainLabels(const v1::Job& job);

// The live status of a job: "RUNNING  epoch 3/50 ..." for training, "images 120/500 ..."
// for data-set generation, "40% of 5 configurations" for sweeps.
std::string ProgressLine(const v1::Job& job);

// Streams a job's events with a one-line live status; returns the terminal job.
absl::StatusOr<v1::Job> WatchJob(client::Client& client, const std::string& job_id,
                                 std::ostream& out);

}  // namespace segserve::segctl
