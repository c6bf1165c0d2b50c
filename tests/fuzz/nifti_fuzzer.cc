// File: tests/fuzz/nifti_fuzzer.cc — NIfTI parsing (server/data/nifti.h) on arbitrary bytes,
// plain or gzip: ParseNifti with a 1 Mi-voxel budget (a header that claims more, or a gzip
// bomb, must be refused from the header, not hit the memory limit), then every operation a
// parsed volume meets: labels, slicing on each axis, normalisation, and a write/re-read
// round trip that must keep the geometry.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/data/nifti.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace segserve::data;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  NiftiLimits limits;
  limits.max_side = 1024;
  limits.max_voxels = int64_t{1} << 20;
  limits.max_vox_offset = 1 << 16;
  auto volume = ParseNifti(bytes, "fuzz.nii", limits);
  if (!volume.ok()) {
    FUZZ_CHECK(volume.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(std::string(volume.status().message()).rfind("fuzz.nii: ", 0) == 0);
    return 0;
  }
  FUZZ_CHECK(volume->version == 1 || volume->version == 2);
  FUZZ_CHECK(volume->num_voxels() >= 1 && volume->num_voxels() <= limits.max_voxels);
  FUZZ_CHECK(static_cast<int64_t>(volume->voxels.size()) == volume->num_voxels());
  FUZZ_CHECK(volume->header.size() == (volume->version == 1 ? 348u : 540u));

  auto labels = LabelsFromVolume(*volume);
  FUZZ_CHECK(labels.ok() || labels.status().code() == absl::StatusCode::kInvalidArgument);
  if (labels.ok()) FUZZ_CHECK(CheckSameShape(*volume, *labels).ok());

  for (int axis = 0; axis < 3; ++axis) {
    const int64_t n = NumSlices(volume->dims, axis);
    const Image first = ExtractSlice(volume->voxels, volume->dims, axis, 0);
    const Image last = ExtractSlice(volume->voxels, volume->dims, axis, n - 1);
    FUZZ_CHECK(first.num_pixels() * n == static_cast<size_t>(volume->num_voxels()));
    FUZZ_CHECK(last.bytes.size() == last.num_pixels() * 4);
  }
  std::vector<float> normalised = volume->voxels;
  NormalizeIntensities(normalised, {MrNormalization::kPercentile});
  for (float v : normalised) FUZZ_CHECK(v >= 0.0f && v <= 1.0f);
  normalised = volume->voxels;
  NormalizeIntensities(normalised, {MrNormalization::kZScore});

  // What we write from a parsed header must parse again, with the same geometry.
  std::vector<uint8_t> ids(volume->voxels.size(), 1);
  const std::string written = SerializeNiftiLabels(*volume, ids, LabelType::kInt16);
  auto back = ParseNifti(written, "written.nii", limits);
  FUZZ_CHECK(back.ok());
  FUZZ_CHECK(back->dims == volume->dims);
  FUZZ_CHECK(back->version == volume->version);
  FUZZ_CHECK(back->qform_code == volume->qform_code && back->sform_code == volume->sform_code);
  return 0;
}
