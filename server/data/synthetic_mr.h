// File: server/data/synthetic_mr.h — small synthetic MR-like volumes for tests and the quick
// path (no MR data can be downloaded offline): smooth ellipsoid "organs" in a body, with a
// multiplicative bias field and noise, plus the matching label volume. Deterministic from a
// seed; written as an nnU-Net raw data set of .nii.gz files.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/data/nifti.h"

namespace segserve::data {

// Label ids: 0 background (air and body), 1 organ, 2 lesion (inside the organ).
inline constexpr uint8_t kMrBackground = 0;
inline constexpr uint8_t kMrOrgan = 1;
inline constexpr uint8_t kMrLesion = 2;

struct SyntheticMrOptions {
  std::array<int64_t, 3> dims{64, 64, 16};
  std::array<double, 3> spacing{1.0, 1.0, 3.0};  // mm
  int version = 1;                               // NIfTI-1 or NIfTI-2
};

struct SyntheticMrVolume {
  NiftiVolume image;  // float intensities on an MR-like scale (~0..1000)
  NiftiLabels labels;
};

// Volume `index` of the set drawn with `seed`. The affine is a diagonal of the spacing with
// the x axis flipped (radiological storage, as many scanners write) and the centre at the
// world origin, so orientation handling is exercised.
absl::StatusOr<SyntheticMrVolume> GenerateSyntheticMrVolume(uint64_t seed, int index,
                                                            const SyntheticMrOptions &options = {});

// Writes `count` volumes as an nnU-Net v2 raw data set under `out_dir`:
// imagesTr/mr_NNN_0000.nii.gz, labelsTr/mr_NNN.nii.gz and dataset.json. AlreadyExists when
// out_dir/dataset.json exists.
absl::Status WriteSyntheticMrDataset(const std::string &out_dir, int count, uint64_t seed,
                                     const SyntheticMrOptions &options = {});

}  // namespace segserve::data
