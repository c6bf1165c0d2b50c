// File: tests/testing/commands.h — helpers black-box tests share: run a command line and
// capture what it prints, and follow a job's WatchJob stream to its end.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "segserve/v1/training.grpc.pb.h"

namespace segserve::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when the command did not exit normally
  std::string output;  // stdout and stderr together
};

// Runs `command` with /bin/sh, stderr merged into stdout.
CommandResult RunCommand(const std::string& command);

// The first image (a .png that is not a mask) under `dataset_dir`, "" when none.
std::string FirstImageOf(const std::string& dataset_dir);

// A tiny training spec: one ResNet18 L1 configuration, batch 4, learning rate 3e-3, and
// (when > 0) at most `max_steps` steps per epoch.
v1::TrainSpec TinyTrainSpec(const std::string& dataset, int epochs, int max_steps = 0);

// Reads job `id`'s events until the terminal one (or `timeout`); `on_event` sees each.
// Returns the job as of the last event.
v1::Job WatchUntilTerminal(v1::Training::Stub& training, const std::string& id,
                           std::chrono::seconds timeout,
                           const std::function<void(const v1::JobEvent&)>& on_event = nullptr);

}  // namespace segserve::testing
