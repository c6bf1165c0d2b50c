// File: server/training/optimizer_state.h — the Adam state beside a run's checkpoints
// (latest.optim): saved after each epoch, streamed into the file, and loaded only for the
// epoch it belongs to.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace torch::optim {
class Adam;
}  // namespace torch::optim

namespace segserve::training {

absl::Status SaveOptimizer(const std::string& path, torch::optim::Adam& optimizer, int epoch);

// Loads the Adam state saved after `epoch`; false (state reset) when the file is missing or
// belongs to another epoch.
bool LoadOptimizer(const std::string& path, torch::optim::Adam& optimizer, int epoch);

}  // namespace segserve::training
