// File: server/app/bootstrap.h — the quick-start on an empty data dir: generate a small
// synthetic plasmodium data set, then run a `quick` experiment on it (resnet18, L0 and L1, two
// seeds, every level of the three shifts, docs/experiments.md), so that a newcomer's first
// look is IoU against shift level with intervals. The aliases `baseline` and `l1-pruned` point
// at seed 1's L0 and L1 models as soon as the experiment is submitted (they resolve once those
// are trained) and at the best seed of each level (highest validation IoU) when it ends.
// Progress survives restarts through <data_dir>/bootstrap.json: "dataset" -> "submitted"
// (with the experiment's id: a restart resumes waiting for it) -> "done". --bootstrap=false
// turns it off.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "server/registry/model_store.h"
#include "server/scheduler/scheduler.h"

namespace segserve::app {

struct BootstrapOptions {
  std::string data_dir;
  std::string dataset = "plasmodium-synth";
  int images = 240;
  int size = 128;
  int epochs = 12;
  std::vector<uint64_t> seeds = {1, 2};
  std::string encoder = "resnet18";
  int max_steps_per_epoch = 0;  // 0 = every batch (tests shrink it)
};

class Bootstrap {
 public:
  Bootstrap(BootstrapOptions options, scheduler::Scheduler& scheduler, registry::ModelStore& store);
  // Stops waiting (the jobs themselves are durable) and joins.
  ~Bootstrap();

  // Starts the bootstrap thread when the data dir is empty or a bootstrap is unfinished.
  void StartIfNeeded();

 private:
  void Run(std::string experiment_id);
  // Waits for `job_id` to end; false on shutdown or a watch error.
  bool WaitTerminal(const std::string& job_id, scheduler::Job* job);
  // Submits the experiment and points the aliases at seed 1's models; "" on failure.
  std::string SubmitExperiment();
  // Points each alias at its level's child with the highest validation IoU.
  void PointAliasesAtBestSeeds(const scheduler::Job& experiment);

  const BootstrapOptions options_;
  scheduler::Scheduler& scheduler_;
  registry::ModelStore& store_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace segserve::app
