// File: server/app/synth_runner.h — the SYNTH job kind: generates a synthetic plasmodium
// data set into <data_dir>/datasets/<name> and records it in the data-set index
// (Datasets.Generate and the quick-start).
#pragma once

#include <string>

#include "server/data/dataset_index.h"
#include "server/data/synthetic.h"
#include "server/scheduler/runner.h"

namespace segserve::app {

class SynthRunner : public scheduler::Runner {
 public:
  // Marks a set this runner published with the job's id, so a re-run knows its own set.
  static constexpr char kMarkerFile[] = ".synth.json";

  // Publishes into index.datasets_dir() and records the set in `index`.
  explicit SynthRunner(data::DatasetIndex& index) : index_(index) {}
  // Writes into a temporary folder, marks it with the job's id and renames it into place,
  // so a crash never leaves a half-written data set visible. A re-run after a crash before
  // the rename starts over; one after it finds its own set (the marker) and only records
  // it in the index.
  absl::Status Run(const scheduler::Job& job, scheduler::JobContext& ctx) override;

 private:
  // Records the set published at `final_dir` in the index and completes the job.
  absl::Status Publish(const data::SyntheticDatasetOptions& options, const std::string& final_dir,
                       scheduler::JobProgress progress, scheduler::JobContext& ctx);

  data::DatasetIndex& index_;
};

}  // namespace segserve::app
