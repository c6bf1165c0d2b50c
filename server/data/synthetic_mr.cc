#include "server/data/synthetic_mr.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"

namespace segserve::data {
namespace {

struct Ellipsoid {
  double cx, cy, cz, rx, ry, rz;
  // < 1 inside; coordinates in voxels.
  double Distance(double x, double y, double z) const {
    const double dx = (x - cx) / rx, dy = (y - cy) / ry, dz = (z - cz) / rz;
    return dx * dx + dy * dy + dz * dz;
  }
};

// A soft 0..1 membership, so edges are smooth as after an MR's point-spread function.
double Soft(double distance) { return 1.0 / (1.0 + std::exp((std::sqrt(distance) - 1.0) * 12.0)); }

}  // namespace

absl::StatusOr<SyntheticMrVolume> GenerateSyntheticMrVolume(uint64_t seed, int index,
                                                            const SyntheticMrOptions &options) {
  const auto &d = options.dims;
  for (int64_t n : d) {
    if (n < 4 || n > 1024) {
      return absl::InvalidArgumentError(absl::StrCat("dims: each must be 4..1024, got ", n));
    }
  }
  Affine affine{};
  affine[0] = {-options.spacing[0], 0, 0, options.spacing[0] * (d[0] - 1) / 2.0};
  affine[1] = {0, options.spacing[1], 0, -options.spacing[1] * (d[1] - 1) / 2.0};
  affine[2] = {0, 0, options.spacing[2], -options.spacing[2] * (d[2] - 1) / 2.0};
  affine[3] = {0, 0, 0, 1};
  ASSIGN_OR_RETURN(NiftiVolume image, NewNiftiVolume(d, affine, options.version));
  image.source = absl::StrFormat("synthetic-mr-%d", index);

  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(index) + 1);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double nx = static_cast<double>(d[0]), ny = static_cast<double>(d[1]),
               nz = static_cast<double>(d[2]);
  const Ellipsoid body{nx / 2, ny / 2, nz / 2, nx * 0.45, ny * 0.40, nz * 0.9};
  const Ellipsoid organ{nx * (0.40 + 0.2 * u(rng)),  ny * (0.40 + 0.2 * u(rng)),
                        nz * (0.45 + 0.1 * u(rng)),  nx * (0.14 + 0.06 * u(rng)),
                        ny * (0.12 + 0.06 * u(rng)), nz * (0.30 + 0.1 * u(rng))};
  const Ellipsoid lesion{organ.cx + organ.rx * (u(rng) - 0.5) * 0.6,
                         organ.cy + organ.ry * (u(rng) - 0.5) * 0.6,
                         organ.cz,
                         organ.rx * 0.35,
                         organ.ry * 0.35,
                         organ.rz * 0.5};
  const double body_level = 300 + 60 * u(rng), organ_level = 650 + 100 * u(rng),
               lesion_level = 150 + 50 * u(rng);
  // A smooth multiplicative bias field (coil sensitivity), +-25 % across the field of view.
  const double bias_x = (u(rng) - 0.5) * 0.5, bias_y = (u(rng) - 0.5) * 0.5,
               bias_phase = u(rng) * 6.28;
  std::normal_distribution<double> noise(0.0, 18.0);

  SyntheticMrVolume out;
  out.labels.source = image.source + "-labels";
  out.labels.dims = d;
  out.labels.ids.assign(image.voxels.size(), kMrBackground);
  size_t i = 0;
  for (int64_t z = 0; z < d[2]; ++z) {
    for (int64_t y = 0; y < d[1]; ++y) {
      for (int64_t x = 0; x < d[0]; ++x, ++i) {
        const double in_body = Soft(body.Distance(x, y, z));
        const double in_organ = Soft(organ.Distance(x, y, z));
        const double in_lesion = Soft(lesion.Distance(x, y, z));
        double v = in_body * body_level;
        v += in_organ * (organ_level - v);
        v += in_lesion * (lesion_level - v);
        const double bias = 1.0 + bias_x * (x / nx - 0.5) * 2 + bias_y * (y / ny - 0.5) * 2 +
                            0.05 * std::sin(bias_phase + z / nz * 3.0);
        // Magnitude images have Rician noise: the modulus of a complex Gaussian signal.
        const double re = v * bias + noise(rng), im = noise(rng);
        image.voxels[i] = static_cast<float>(std::sqrt(re * re + im * im));
        if (lesion.Distance(x, y, z) < 1.0) {
          out.labels.ids[i] = kMrLesion;
        } else if (organ.Distance(x, y, z) < 1.0) {
          out.labels.ids[i] = kMrOrgan;
        }
      }
    }
  }
  out.image = std::move(image);
  return out;
}

absl::Status WriteSyntheticMrDataset(const std::string &out_dir, int count, uint64_t seed,
                                     const SyntheticMrOptions &options) {
  if (count < 1) return absl::InvalidArgumentError("count: must be >= 1");
  std::error_code ec;
  if (std::filesystem::exists(out_dir + "/dataset.json", ec)) {
    return absl::AlreadyExistsError(absl::StrCat(out_dir, " already holds a data set"));
  }
  RETURN_IF_ERROR(common::MakeDirectories(out_dir + "/imagesTr"));
  RETURN_IF_ERROR(common::MakeDirectories(out_dir + "/labelsTr"));
  for (int i = 0; i < count; ++i) {
    ASSIGN_OR_RETURN(SyntheticMrVolume volume, GenerateSyntheticMrVolume(seed, i, options));
    const std::string id = absl::StrFormat("mr_%03d", i);
    RETURN_IF_ERROR(
        WriteNiftiFloat(absl::StrCat(out_dir, "/imagesTr/", id, "_0000.nii.gz"), volume.image));
    RETURN_IF_ERROR(WriteNiftiLabels(absl::StrCat(out_dir, "/labelsTr/", id, ".nii.gz"),
                                     volume.image, volume.labels.ids));
  }
  nlohmann::json meta = {
      {"name", "mr-synth"},
      {"channel_names", {{"0", "MRI"}}},
      {"labels", {{"background", 0}, {"organ", 1}, {"lesion", 2}}},
      {"numTraining", count},
      {"file_ending", ".nii.gz"},
  };
  return common::WriteFileAtomically(out_dir + "/dataset.json", meta.dump(2) + "\n");
}

}  // namespace segserve::data
