// File: server/data/nifti_write.cc — writing NIfTI volumes: label volumes and float volumes
// with an input's header (only the fields describing the new voxels change), and fresh
// volumes from an affine. Reading, validation and slicing are in nifti.cc / nifti_slices.cc.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/data/nifti.h"
#include "server/data/nifti_gzip.h"

extern "C" {
#include "nifti2_io.h"
}

namespace segserve::data {
namespace {

template <typename H>
void SetOutputFields(H& h, const std::array<int64_t, 3>& dims, int datatype, int bitpix,
                     double cal_max, bool label_intent) {
  using Dim = std::remove_reference_t<decltype(h.dim[0])>;
  const int64_t dim0 = std::clamp<int64_t>(h.dim[0], 2, 3);
  h.dim[0] = static_cast<Dim>(dims[2] > 1 ? 3 : dim0);
  for (int i = 0; i < 3; ++i) h.dim[i + 1] = static_cast<Dim>(dims[i]);
  for (int i = 4; i < 8; ++i) h.dim[i] = 1;
  h.datatype = static_cast<std::remove_reference_t<decltype(h.datatype)>>(datatype);
  h.bitpix = static_cast<std::remove_reference_t<decltype(h.bitpix)>>(bitpix);
  h.vox_offset = sizeof(H) + 4;
  h.scl_slope = 1;
  h.scl_inter = 0;
  h.cal_min = 0;
  h.cal_max = static_cast<std::remove_reference_t<decltype(h.cal_max)>>(cal_max);
  if (label_intent) {
    h.intent_code = NIFTI_INTENT_LABEL;
    h.intent_p1 = h.intent_p2 = h.intent_p3 = 0;
    std::memset(h.intent_name, 0, sizeof(h.intent_name));
  }
}

// Header (+ a zero extension flag) for `like`'s header with new voxel fields.
std::string OutputHeader(const NiftiVolume& like, int datatype, int bitpix, double cal_max,
                         bool label_intent) {
  std::string out;
  if (like.version == 2) {
    nifti_2_header h;
    std::memcpy(&h, like.header.data(), sizeof(h));
    SetOutputFields(h, like.dims, datatype, bitpix, cal_max, label_intent);
    std::memcpy(h.magic, "n+2\0\r\n\032\n", 8);
    out.assign(reinterpret_cast<const char*>(&h), sizeof(h));
  } else {
    nifti_1_header h;
    std::memcpy(&h, like.header.data(), sizeof(h));
    SetOutputFields(h, like.dims, datatype, bitpix, cal_max, label_intent);
    std::memcpy(h.magic, "n+1", 4);
    out.assign(reinterpret_cast<const char*>(&h), sizeof(h));
  }
  out.append(4, '\0');  // extension flag: none
  return out;
}

absl::Status WriteBytes(const std::string& path, std::string bytes) {
  if (absl::EndsWith(absl::AsciiStrToLower(path), ".gz")) {
    ASSIGN_OR_RETURN(bytes, GzipCompress(bytes));
  }
  return common::WriteFileAtomically(path, bytes);
}

bool HeaderMatchesVolume(const NiftiVolume& v) {
  return v.header.size() == (v.version == 2 ? sizeof(nifti_2_header) : sizeof(nifti_1_header));
}

}  // namespace

std::string SerializeNiftiLabels(const NiftiVolume& like, const std::vector<uint8_t>& ids,
                                 LabelType type) {
  const uint8_t max_id = ids.empty() ? 0 : *std::max_element(ids.begin(), ids.end());
  if (type == LabelType::kUInt8) {
    std::string out = OutputHeader(like, DT_UINT8, 8, max_id, true);
    out.append(ids.begin(), ids.end());
    return out;
  }
  std::string out = OutputHeader(like, DT_INT16, 16, max_id, true);
  const size_t start = out.size();
  out.resize(start + ids.size() * 2);
  for (size_t i = 0; i < ids.size(); ++i) {
    const int16_t v = ids[i];
    std::memcpy(&out[start + 2 * i], &v, 2);
  }
  return out;
}

absl::Status WriteNiftiLabels(const std::string& path, const NiftiVolume& like,
                              const std::vector<uint8_t>& ids, LabelType type) {
  if (!HeaderMatchesVolume(like) || static_cast<int64_t>(ids.size()) != like.num_voxels()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", ids.size(), " labels for a ",
                                                   NiftiDimsText(like.dims), " volume"));
  }
  return WriteBytes(path, SerializeNiftiLabels(like, ids, type));
}

absl::Status WriteNiftiFloat(const std::string& path, const NiftiVolume& volume) {
  if (!HeaderMatchesVolume(volume) ||
      static_cast<int64_t>(volume.voxels.size()) != volume.num_voxels()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", volume.voxels.size(), " voxels for a ", NiftiDimsText(volume.dims), " volume"));
  }
  std::string out = OutputHeader(volume, DT_FLOAT32, 32, 0, false);
  const size_t start = out.size();
  out.resize(start + volume.voxels.size() * 4);
  std::memcpy(&out[start], volume.voxels.data(), volume.voxels.size() * 4);
  return WriteBytes(path, std::move(out));
}

absl::StatusOr<NiftiVolume> NewNiftiVolume(const std::array<int64_t, 3>& dims, const Affine& affine,
                                           int version) {
  if (version != 1 && version != 2) {
    return absl::InvalidArgumentError(absl::StrCat("version: must be 1 or 2, got ", version));
  }
  for (int64_t d : dims) {
    if (d < 1 || d > NiftiLimits{}.max_side) {
      return absl::InvalidArgumentError(absl::StrCat("dims: ", NiftiDimsText(dims)));
    }
  }
  nifti_dmat44 r;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) r.m[i][j] = affine[i][j];
  }
  double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
  nifti_dmat44_to_quatern(r, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
  const int64_t arg_dims[8] = {3, dims[0], dims[1], dims[2], 1, 1, 1, 1};
  auto fill = [&](auto* h) {
    using Real = std::remove_reference_t<decltype(h->pixdim[0])>;
    h->pixdim[0] = static_cast<Real>(qfac);
    h->pixdim[1] = static_cast<Real>(dx);
    h->pixdim[2] = static_cast<Real>(dy);
    h->pixdim[3] = static_cast<Real>(dz);
    h->qform_code = h->sform_code = NIFTI_XFORM_SCANNER_ANAT;
    h->quatern_b = static_cast<Real>(qb);
    h->quatern_c = static_cast<Real>(qc);
    h->quatern_d = static_cast<Real>(qd);
    h->qoffset_x = static_cast<Real>(qx);
    h->qoffset_y = static_cast<Real>(qy);
    h->qoffset_z = static_cast<Real>(qz);
    for (int c = 0; c < 4; ++c) {
      h->srow_x[c] = static_cast<Real>(affine[0][c]);
      h->srow_y[c] = static_cast<Real>(affine[1][c]);
      h->srow_z[c] = static_cast<Real>(affine[2][c]);
    }
    h->xyzt_units = NIFTI_UNITS_MM;
    std::snprintf(h->descrip, sizeof(h->descrip), "segserve");
  };
  NiftiVolume volume;
  volume.version = version;
  volume.dims = dims;
  if (version == 1) {
    nifti_1_header* h = nifti_make_new_n1_header(arg_dims, DT_FLOAT32);
    if (h == nullptr) return absl::InternalError("nifti_make_new_n1_header failed");
    fill(h);
    volume.header.assign(reinterpret_cast<uint8_t*>(h), reinterpret_cast<uint8_t*>(h) + sizeof(*h));
    free(h);
  } else {
    nifti_2_header* h = nifti_make_new_n2_header(arg_dims, DT_FLOAT32);
    if (h == nullptr) return absl::InternalError("nifti_make_new_n2_header failed");
    fill(h);
    volume.header.assign(reinterpret_cast<uint8_t*>(h), reinterpret_cast<uint8_t*>(h) + sizeof(*h));
    free(h);
  }
  volume.voxels.assign(static_cast<size_t>(volume.num_voxels()), 0.0f);
  // Parse what would be written, so every field is exactly what a reader will see.
  std::string bytes = OutputHeader(volume, DT_FLOAT32, 32, 0, false);
  bytes.append(volume.voxels.size() * 4, '\0');
  return ParseNifti(bytes, "new volume");
}

}  // namespace segserve::data
