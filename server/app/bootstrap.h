// File: server/app/bootstrap.h — the quick-start on an empty data dir: generate a small
// synthetic plasmodium data set, then train an L0 + L1 sweep whose models the aliases
// `baseline` and `l1-pruned` point at. Progress survives restarts through
// <data_dir>/bootstrap.json ("dataset" -> "submitted"); --bootstrap=false turns it off.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "server/registry/model_store.h"
#include "server/scheduler/scheduler.h"

namespace segserve::app {

struct BootstrapOptions {
  std::string data_dir;
  std::string dataset = "plasmodium-synth";
  int images = 240;
  int size = 128;
  int epochs = 12;
  std::string encoder = "resnet18";
};

class Bootstrap {
 public:
  Bootstrap(BootstrapOptions options, scheduler::Scheduler& scheduler, registry::ModelStore& store);
  // Stops waiting (the jobs themselves are durable) and joins.
  ~Bootstrap();

  // Starts the bootstrap thread when the data dir is empty or a bootstrap is unfinished.
  void StartIfNeeded();

 private:
  void Run();

  const BootstrapOptions options_;
  scheduler::Scheduler& scheduler_;
  registry::ModelStore& store_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace segserve::app
