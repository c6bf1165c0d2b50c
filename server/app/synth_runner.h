// File: server/app/synth_runner.h — the SYNTH job kind: generates a synthetic plasmodium
// data set into <data_dir>/datasets/<name> (Datasets.Generate and the quick-start).
#pragma once

#include <string>

#include "server/scheduler/runner.h"

namespace segserve::app {

class SynthRunner : public scheduler::Runner {
 public:
  explicit SynthRunner(std::string data_dir) : data_dir_(std::move(data_dir)) {}
  // Writes into a temporary folder and renames it into place, so a crash never leaves a
  // half-written data set visible; a re-run after a crash starts over.
  absl::Status Run(const scheduler::Job& job, scheduler::JobContext& ctx) override;

 private:
  const std::string data_dir_;
};

}  // namespace segserve::app
