// File: client/lib/lifecycle.h — typed calls for removing things from a segserve (issue 19):
// model versions, data sets and finished jobs. Each needs an admin token.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "client/lib/client.h"
#include "segserve/v1/datasets.pb.h"
#include "segserve/v1/models.pb.h"
#include "segserve/v1/training.pb.h"

namespace segserve::client {

// Models.Delete: one version (>= 1), or every version of `name` when `version` is 0.
absl::StatusOr<v1::DeleteModelResponse> DeleteModel(const Client& client, const std::string& name,
                                                    int64_t version);

// Datasets.Delete.
absl::StatusOr<v1::DeleteDatasetResponse> DeleteDataset(const Client& client,
                                                        const std::string& name);

// Training.PurgeJobs: finished jobs that finished at least `older_than` ago.
absl::StatusOr<v1::PurgeJobsResponse> PurgeJobs(const Client& client,
                                                std::chrono::seconds older_than);

// "1.5 GiB", "220 MiB", "12 KiB", "512 B".
std::string HumanBytes(int64_t bytes);

}  // namespace segserve::client
