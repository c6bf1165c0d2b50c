// File: server/data/nifti.h — MR volumes in NIfTI-1/2 (.nii, .nii.gz): read into a
// validated 3-D volume, slice into 2-D float images for 1-channel models, normalise MR
// intensities, and write label volumes back with the input's header so that they overlay in
// ITK-SNAP, 3D Slicer or nibabel. No libnifti type appears here.
//
// Reading: the whole file (gzip or not, recognised by its magic bytes, not by its name) is
// parsed from memory; the header is checked before any voxel buffer is sized, and gzip is
// inflated only up to the size the header declares, so a lying header or a gzip bomb costs
// no more than the limits below. Every refusal is InvalidArgument "<file>: <problem>".
// Supported: single-file NIfTI-1 ("n+1") and NIfTI-2 ("n+2"), either byte order, 2-D or 3-D
// (dim[4..7] must be 1), integer and real datatypes of 8..64 bits. Extensions are skipped on
// read and not written back.
//
// Intensity normalisation for MR (there is no fixed scale as with 8-bit photographs):
// - kPercentile (default): clip to the volume's [0.5, 99.5] percentiles, then scale
//   linearly to [0, 1]; a constant volume becomes all zeros. The result is on the API's
//   [0, 1] scale, so the model's own per-channel normalisation applies as for photographs.
// - kZScore: (v - mean) / std over the whole volume (std 0 -> all zeros), as nnU-Net does
//   for MR; values are not bounded to [0, 1] (a model must be trained on the same scale).
// Both are per volume, never per slice, so slices of one volume stay comparable.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/data/image.h"

namespace segserve::data {

// Refusal limits (absurd sizes, decompression bombs). Sized for clinical MR and CT.
struct NiftiLimits {
  int64_t max_side = 4096;                     // per dimension
  int64_t max_voxels = int64_t{256} << 20;     // nx * ny * nz
  int64_t max_vox_offset = int64_t{16} << 20;  // bytes of header + extensions
};

using Affine = std::array<std::array<double, 4>, 4>;  // voxel (i, j, k, 1) -> world mm

// A validated 2-D or 3-D NIfTI volume. Voxel (i, j, k) is at i + nx * (j + ny * k).
struct NiftiVolume {
  std::string source;                   // file name, for messages
  int version = 1;                      // NIfTI-1 or NIfTI-2
  std::array<int64_t, 3> dims{};        // nx, ny, nz (nz = 1 for a 2-D file)
  std::array<double, 3> spacing{};      // pixdim[1..3]
  int datatype = 0;                     // NIfTI datatype code of the stored voxels
  double scl_slope = 1, scl_inter = 0;  // applied (1 and 0 when the file has no scaling)
  int qform_code = 0, sform_code = 0;
  Affine qform{}, sform{};    // valid when the matching code is > 0
  std::vector<float> voxels;  // scl_slope * stored + scl_inter, nx * ny * nz
  // The header as read, in this machine's byte order (348 or 540 bytes): written back
  // verbatim except for the fields that describe the new voxel data.
  std::vector<uint8_t> header;

  int64_t num_voxels() const { return dims[0] * dims[1] * dims[2]; }
};

// A validated label volume: integer class ids 0..255, same voxel order as NiftiVolume.
struct NiftiLabels {
  std::string source;
  std::array<int64_t, 3> dims{};
  std::vector<uint8_t> ids;
};

// Parses NIfTI bytes (gzip-compressed or not); `name` is used in messages.
absl::StatusOr<NiftiVolume> ParseNifti(std::string_view bytes, const std::string &name,
                                       const NiftiLimits &limits = {});
absl::StatusOr<NiftiVolume> ReadNifti(const std::string &path, const NiftiLimits &limits = {});
// Only the header, checked as ParseNifti checks it (dimensions, 4-D, datatype, limits),
// from the first bytes of the file (inflating only those): `voxels` stays empty. For opening
// data sets of many volumes without decoding them.
absl::StatusOr<NiftiVolume> ReadNiftiHeader(const std::string &path,
                                            const NiftiLimits &limits = {});

// Whether a file name ends in .nii or .nii.gz (any case); NiftiStem drops that ending.
bool IsNiftiPath(std::string_view path);
std::string_view NiftiStem(std::string_view name);

// Reads a label volume: every voxel value (after scaling) must be an integer in 0..255;
// InvalidArgument naming the file, the first offending voxel and its value otherwise.
absl::StatusOr<NiftiLabels> ReadNiftiLabels(const std::string &path,
                                            const NiftiLimits &limits = {});
absl::StatusOr<NiftiLabels> LabelsFromVolume(const NiftiVolume &volume);

// "AxBxC", for messages.
std::string NiftiDimsText(const std::array<int64_t, 3>& dims);

// InvalidArgument "<labels file>: shape AxBxC differs from its image <image file> (DxExF)".
absl::Status CheckSameShape(const NiftiVolume &image, const NiftiLabels &labels);

// --- Slicing: axis 0, 1 or 2 is the one held fixed; 2 (the slowest, usually the
// acquisition's slice direction) by default. A slice's rows and columns are the two other
// axes, the faster one along the columns: axis 2 -> ny x nx, 1 -> nz x nx, 0 -> nz x ny.
absl::Status ValidateAxis(int axis);
int64_t NumSlices(const std::array<int64_t, 3> &dims, int axis);
// 1-channel float (PixelDepth::kF32) image of slice `index` of `voxels`.
Image ExtractSlice(const std::vector<float> &voxels, const std::array<int64_t, 3> &dims, int axis,
                   int64_t index);
// Writes `mask` (the slice's shape) into slice `index` of `ids`.
absl::Status InsertSlice(const Mask &mask, const std::array<int64_t, 3> &dims, int axis,
                         int64_t index, std::vector<uint8_t> &ids);
Mask ExtractMaskSlice(const std::vector<uint8_t> &ids, const std::array<int64_t, 3> &dims, int axis,
                      int64_t index);

// --- Normalisation (see the file comment).
enum class MrNormalization { kPercentile, kZScore };
absl::StatusOr<MrNormalization> ParseMrNormalization(std::string_view name);
std::string_view MrNormalizationName(MrNormalization method);
struct NormalizationOptions {
  MrNormalization method = MrNormalization::kPercentile;
  double low_percentile = 0.5, high_percentile = 99.5;
};
void NormalizeIntensities(std::vector<float> &voxels, const NormalizationOptions &options = {});

// --- Writing. Gzip-compressed when `path` ends in ".gz"; written atomically.
enum class LabelType { kUInt8, kInt16 };
// A label volume with `like`'s header (version, dims, spacing, qform, sform, units,
// description), datatype uint8 or int16, scaling 1/0 and intent "label".
absl::Status WriteNiftiLabels(const std::string &path, const NiftiVolume &like,
                              const std::vector<uint8_t> &ids, LabelType type = LabelType::kUInt8);
// `volume.voxels` as float32 with `volume`'s header (scaling 1/0).
absl::Status WriteNiftiFloat(const std::string &path, const NiftiVolume &volume);
// The serialised file (uncompressed) that the two writers above produce.
std::string SerializeNiftiLabels(const NiftiVolume &like, const std::vector<uint8_t> &ids,
                                 LabelType type);

// A new volume (zero voxels) with a fresh header whose qform and sform both hold `affine`
// (codes 1, scanner anatomical), spacing taken from the affine's column norms.
absl::StatusOr<NiftiVolume> NewNiftiVolume(const std::array<int64_t, 3> &dims, const Affine &affine,
                                           int version = 1);

}  // namespace segserve::data
