// File: server/api/train_spec_converter.h — segserve.v1.TrainSpec <-> the training
// runner's spec JSON. A spec naming several encoders or prune levels expands into one
// child spec per configuration (a sweep).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "segserve/v1/training.pb.h"

namespace segserve::data {
class DatasetIndex;
}  // namespace segserve::data

namespace segserve::api {

struct RunnerSpecs {
  std::string parent;                 // the sweep's own spec (the request as submitted)
  std::vector<std::string> children;  // one per configuration; size 1 = a single job
};

// Validates (InvalidArgument naming `spec.<field>` and the limit; NotFound for a data set
// or pretrained file missing under `data_dir`; with `datasets`, data sets are looked up in
// that index) and expands the spec.
absl::StatusOr<RunnerSpecs> TrainSpecsFromProto(const v1::TrainSpec& spec,
                                                const std::string& data_dir,
                                                data::DatasetIndex* datasets = nullptr);

// v1::Precision <-> the spec's "fp32" | "bf16" | "fp16" (unspecified = fp32; an unknown
// enum value maps to its number, which ValidateTrainSpec then refuses naming the field).
std::string PrecisionName(v1::Precision precision);
v1::Precision PrecisionFromName(const std::string& name);

// Best-effort reverse mapping for display (GetJob/ListJobs/WatchJob).
void TrainSpecToProto(const std::string& spec_json, v1::TrainSpec* out);

}  // namespace segserve::api
