// Slicing NIfTI volumes into 2-D samples and back, and MR intensity normalisation (the
// declarations and their documentation are in nifti.h; reading and writing in nifti.cc).
#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/data/absl_compat.h"
#include "server/data/nifti.h"

namespace segserve::data {
namespace {

// Strides of the voxel order; the two axes other than `axis`, faster first.
void SliceGeometry(const std::array<int64_t, 3>& dims, int axis, int& fast, int& slow,
                   std::array<int64_t, 3>& stride) {
  stride = {1, dims[0], dims[0] * dims[1]};
  fast = axis == 0 ? 1 : 0;
  slow = axis == 2 ? 1 : 2;
}

}  // namespace

absl::Status ValidateAxis(int axis) {
  if (axis >= 0 && axis <= 2) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("axis: must be 0, 1 or 2, got ", axis));
}

int64_t NumSlices(const std::array<int64_t, 3>& dims, int axis) { return dims[axis]; }

Image ExtractSlice(const std::vector<float>& voxels, const std::array<int64_t, 3>& dims, int axis,
                   int64_t index) {
  int fast, slow;
  std::array<int64_t, 3> stride;
  SliceGeometry(dims, axis, fast, slow, stride);
  Image image = Image::Create(static_cast<int>(dims[slow]), static_cast<int>(dims[fast]), 1,
                              PixelDepth::kF32);
  float* out = reinterpret_cast<float*>(image.bytes.data());
  const int64_t base = index * stride[axis];
  for (int64_t r = 0; r < dims[slow]; ++r) {
    for (int64_t c = 0; c < dims[fast]; ++c) {
      out[r * dims[fast] + c] = voxels[base + r * stride[slow] + c * stride[fast]];
    }
  }
  return image;
}

absl::Status InsertSlice(const Mask& mask, const std::array<int64_t, 3>& dims, int axis,
                         int64_t index, std::vector<uint8_t>& ids) {
  int fast, slow;
  std::array<int64_t, 3> stride;
  SliceGeometry(dims, axis, fast, slow, stride);
  if (mask.height != dims[slow] || mask.width != dims[fast] || index < 0 || index >= dims[axis] ||
      static_cast<int64_t>(ids.size()) != dims[0] * dims[1] * dims[2]) {
    return absl::InvalidArgumentError(absl::StrCat("slice ", index, ": mask is ", mask.height, "x",
                                                   mask.width, ", the volume's slice is ",
                                                   dims[slow], "x", dims[fast]));
  }
  const int64_t base = index * stride[axis];
  for (int64_t r = 0; r < dims[slow]; ++r) {
    for (int64_t c = 0; c < dims[fast]; ++c) {
      ids[base + r * stride[slow] + c * stride[fast]] = mask.ids[r * dims[fast] + c];
    }
  }
  return absl::OkStatus();
}

Mask ExtractMaskSlice(const std::vector<uint8_t>& ids, const std::array<int64_t, 3>& dims, int axis,
                      int64_t index) {
  int fast, slow;
  std::array<int64_t, 3> stride;
  SliceGeometry(dims, axis, fast, slow, stride);
  Mask mask = Mask::Create(static_cast<int>(dims[slow]), static_cast<int>(dims[fast]));
  const int64_t base = index * stride[axis];
  for (int64_t r = 0; r < dims[slow]; ++r) {
    for (int64_t c = 0; c < dims[fast]; ++c) {
      mask.ids[r * dims[fast] + c] = ids[base + r * stride[slow] + c * stride[fast]];
    }
  }
  return mask;
}

absl::StatusOr<MrNormalization> ParseMrNormalization(std::string_view name) {
  if (name == "percentile") return MrNormalization::kPercentile;
  if (name == "zscore") return MrNormalization::kZScore;
  return absl::InvalidArgumentError(
      absl::StrCat("normalisation: must be percentile or zscore, got '", Sv(name), "'"));
}

std::string_view MrNormalizationName(MrNormalization method) {
  return method == MrNormalization::kZScore ? "zscore" : "percentile";
}

void NormalizeIntensities(std::vector<float>& voxels, const NormalizationOptions& options) {
  if (voxels.empty()) return;
  if (options.method == MrNormalization::kZScore) {
    double sum = 0, sum_sq = 0;
    for (float v : voxels) sum += v;
    const double mean = sum / static_cast<double>(voxels.size());
    for (float v : voxels) sum_sq += (v - mean) * (v - mean);
    const double sd = std::sqrt(sum_sq / static_cast<double>(voxels.size()));
    for (float& v : voxels) v = sd > 0 ? static_cast<float>((v - mean) / sd) : 0.0f;
    return;
  }
  // Percentiles with linear interpolation between order statistics (numpy's default).
  std::vector<float> sorted = voxels;
  auto percentile = [&](double p) {
    const double pos = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(sorted.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, sorted.size() - 1);
    std::nth_element(sorted.begin(), sorted.begin() + lo, sorted.end());
    const double a = sorted[lo];
    const double b = hi == lo ? a : *std::min_element(sorted.begin() + lo + 1, sorted.end());
    return a + (b - a) * (pos - static_cast<double>(lo));
  };
  const double low = percentile(options.low_percentile);
  const double high = percentile(options.high_percentile);
  for (float& v : voxels) {
    v = high > low ? static_cast<float>((std::clamp<double>(v, low, high) - low) / (high - low))
                   : 0.0f;
  }
}

}  // namespace segserve::data
