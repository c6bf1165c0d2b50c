// File: server/data/nnunet.h — nnU-Net's raw layout (imagesTr/<case>_0000.png
// or .nii.gz, labelsTr/<case>.png or .nii.gz, dataset.json with "labels" and
// "channel_names"/"modality"), read-only into the same Dataset the native layout
// gives, plus an exporter of 2-D sets.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "server/data/dataset.h"

namespace segserve::data {

// Reads an nnU-Net v1 or v2 raw data set rooted at `root` (absolute). Splits
// come from options.default_ratios (nnU-Net keeps its folds elsewhere);
// imagesTs/ is ignored. One image file per case (<case>_0000 holds all
// channels, as nnU-Net's natural-image reader stores RGB); cases split over
// several channel files are refused.
absl::StatusOr<Dataset> OpenNnUnetDataset(const std::string &root, const OpenOptions &options);

// Writes `dataset` in nnU-Net v2 layout under `out_root` (PNG images and
// labels). FailedPrecondition for a NIfTI data set.
absl::Status ExportNnUnetDataset(const Dataset &dataset, const std::string &out_root);

}  // namespace segserve::data
