// File: server/lifecycle/datasets.h — deleting a data set (its folder under
// <data_dir>/datasets/ and its entry in the data-set index), refused while a queued or
// running job uses it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/data/dataset_index.h"
#include "server/scheduler/job.h"
#include "server/scheduler/scheduler.h"

namespace segserve::lifecycle {

// Data sets a job's spec names: a training job's data set and cross-domain sets, an analysis
// job's sets (every "dataset" string in the spec), and the set a generation job writes.
// Sorted, without duplicates.
std::vector<std::string> DatasetsUsedBy(const scheduler::Job& job);

// Deletes data set `name`: its folder in index.datasets_dir() atomically (tombstone
// rename, fsync, remove), then its index entry, and returns the bytes freed. A set the
// index lists whose folder is already gone (a crash between the two) is removed from the
// index, freeing 0. InvalidArgument (name), NotFound (neither folder nor entry),
// FailedPrecondition naming the queued or running job that uses it (or the job store's
// unavailability: without it, use cannot be ruled out). A job submitted in the instant
// between the check and the rename fails when it starts, saying the data set is missing.
absl::StatusOr<int64_t> DeleteDataset(data::DatasetIndex& index, const std::string& name,
                                      scheduler::Scheduler& scheduler);

}  // namespace segserve::lifecycle
