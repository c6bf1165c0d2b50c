// File: server/lifecycle/datasets.h — deleting a data set under <data_dir>/datasets/, refused
// while a queued or running job uses it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/scheduler/job.h"
#include "server/scheduler/scheduler.h"

namespace segserve::lifecycle {

// Data sets a job's spec names: a training job's data set and cross-domain sets, an analysis
// job's sets (every "dataset" string in the spec), and the set a generation job writes.
// Sorted, without duplicates.
std::vector<std::string> DatasetsUsedBy(const scheduler::Job& job);

// Deletes <data_dir>/datasets/<name> atomically (tombstone rename, fsync, remove) and
// returns the bytes freed. InvalidArgument (name), NotFound, FailedPrecondition naming the
// queued or running job that uses it (or the job store's unavailability: without it, use
// cannot be ruled out). A job submitted in the instant between the check and the rename
// fails when it starts, saying the data set is missing.
absl::StatusOr<int64_t> DeleteDataset(const std::string& data_dir, const std::string& name,
                                      scheduler::Scheduler& scheduler);

}  // namespace segserve::lifecycle
