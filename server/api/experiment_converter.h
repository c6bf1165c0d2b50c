// File: server/api/experiment_converter.h — segserve.v1.ExperimentSpec <-> the experiment's
// spec JSON and its TRAIN children's specs.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "segserve/v1/training.pb.h"

namespace segserve::data {
class DatasetIndex;
}  // namespace segserve::data

namespace segserve::api {

struct ExperimentSpecs {
  std::string parent;                 // experiment::ExperimentSpecToJson, presets applied
  std::vector<std::string> children;  // one TrainSpec JSON per encoder x level x seed
};

// Applies the preset, validates (InvalidArgument naming `spec.<field>`; a grid larger than
// `max_children` — the job queue's limit — is InvalidArgument too; NotFound for a data set or
// pretrained file missing under `data_dir`) and expands the grid.
absl::StatusOr<ExperimentSpecs> ExperimentSpecsFromProto(const v1::ExperimentSpec& spec,
                                                         const std::string& data_dir,
                                                         int max_children,
                                                         data::DatasetIndex* datasets = nullptr);

// Best-effort reverse mapping for display.
void ExperimentSpecToProto(const std::string& spec_json, v1::ExperimentSpec* out);

}  // namespace segserve::api
