#include "server/data/nifti.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/data/absl_compat.h"
#include "server/data/nifti_gzip.h"

extern "C" {
#include "nifti2_io.h"
}

namespace segserve::data {
namespace {

absl::Status Bad(const std::string& name, std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", Sv(problem)));
}

uint32_t Swap32(uint32_t v) {
  return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

// Bytes per voxel of the datatypes we read; 0 for the rest (complex, RGB, float128, bit).
int VoxelBytes(int datatype) {
  switch (datatype) {
    case DT_UINT8:
    case DT_INT8:
      return 1;
    case DT_INT16:
    case DT_UINT16:
      return 2;
    case DT_INT32:
    case DT_UINT32:
    case DT_FLOAT32:
      return 4;
    case DT_INT64:
    case DT_UINT64:
    case DT_FLOAT64:
      return 8;
    default:
      return 0;
  }
}

template <typename T>
void ConvertVoxels(const uint8_t* src, int64_t n, bool swap, double slope, double inter,
                   float* out) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    if (swap && sizeof(T) > 1) nifti_swap_Nbytes(1, sizeof(T), &v);
    out[i] = static_cast<float>(static_cast<double>(v) * slope + inter);
  }
}

void ConvertAll(int datatype, const uint8_t* src, int64_t n, bool swap, double slope, double inter,
                float* out) {
  switch (datatype) {
    case DT_UINT8:
      ConvertVoxels<uint8_t>(src, n, swap, slope, inter, out);
      break;
    case DT_INT8:
      ConvertVoxels<int8_t>(src, n, swap, slope, inter, out);
      break;
    case DT_INT16:
      ConvertVoxels<int16_t>(src, n, swap, slope, inter, out);
      break;
    case DT_UINT16:
      ConvertVoxels<uint16_t>(src, n, swap, slope, inter, out);
      break;
    case DT_INT32:
      ConvertVoxels<int32_t>(src, n, swap, slope, inter, out);
      break;
    case DT_UINT32:
      ConvertVoxels<uint32_t>(src, n, swap, slope, inter, out);
      break;
    case DT_INT64:
      ConvertVoxels<int64_t>(src, n, swap, slope, inter, out);
      break;
    case DT_UINT64:
      ConvertVoxels<uint64_t>(src, n, swap, slope, inter, out);
      break;
    case DT_FLOAT32:
      ConvertVoxels<float>(src, n, swap, slope, inter, out);
      break;
    case DT_FLOAT64:
      ConvertVoxels<double>(src, n, swap, slope, inter, out);
      break;
    default:
      break;
  }
}

Affine ToAffine(const nifti_dmat44& m) {
  Affine a{};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) a[r][c] = m.m[r][c];
  }
  return a;
}

// The header fields both versions share, checked and copied into `volume`. H is
// nifti_1_header or nifti_2_header, already in this machine's byte order.
template <typename H>
absl::Status ReadHeader(const H& h, const std::string& name, const NiftiLimits& limits,
                        NiftiVolume& volume, int64_t& vox_offset) {
  const int64_t dim0 = h.dim[0];
  if (dim0 < 1 || dim0 > 7) {
    return Bad(name, absl::StrCat("header dim[0] = ", dim0, ": must be 1..7"));
  }
  for (int64_t i = 1; i <= dim0; ++i) {
    if (h.dim[i] < 1) {
      return Bad(name, absl::StrCat("header dim[", i, "] = ", h.dim[i], ": must be >= 1"));
    }
  }
  for (int64_t i = 4; i <= dim0; ++i) {
    if (h.dim[i] > 1) {
      return Bad(name, absl::StrCat("a ", i, "-D volume (dim[", i, "] = ", h.dim[i],
                                    "): only 2-D and 3-D volumes are supported; split a "
                                    "series into 3-D volumes"));
    }
  }
  for (int i = 0; i < 3; ++i) {
    volume.dims[i] = i + 1 <= dim0 ? static_cast<int64_t>(h.dim[i + 1]) : 1;
    if (volume.dims[i] > limits.max_side) {
      return Bad(name, absl::StrCat("header dim[", i + 1, "] = ", volume.dims[i],
                                    " exceeds the limit of ", limits.max_side));
    }
  }
  if (volume.num_voxels() > limits.max_voxels) {
    return Bad(name, absl::StrCat(volume.dims[0], "x", volume.dims[1], "x", volume.dims[2], " = ",
                                  volume.num_voxels(), " voxels exceeds the limit of ",
                                  limits.max_voxels));
  }
  volume.datatype = h.datatype;
  const int bytes = VoxelBytes(h.datatype);
  if (bytes == 0) {
    const char* type = nifti_datatype_to_string(h.datatype);
    return Bad(name, absl::StrCat("datatype ", h.datatype, " (", type ? type : "unknown",
                                  ") is not supported; use an integer or real type"));
  }
  if (h.bitpix != 8 * bytes) {
    return Bad(name, absl::StrCat("header bitpix = ", h.bitpix, " disagrees with datatype ",
                                  nifti_datatype_to_string(h.datatype)));
  }
  const double offset = static_cast<double>(h.vox_offset);
  if (!std::isfinite(offset) || offset < static_cast<double>(sizeof(H)) ||
      offset > static_cast<double>(limits.max_vox_offset) || offset != std::floor(offset)) {
    return Bad(name, absl::StrCat("header vox_offset = ", offset, ": must be a whole number in ",
                                  sizeof(H), "..", limits.max_vox_offset));
  }
  vox_offset = static_cast<int64_t>(offset);
  double slope = h.scl_slope, inter = h.scl_inter;
  if (!std::isfinite(slope) || slope == 0) slope = 1, inter = 0;  // the spec: no scaling
  if (!std::isfinite(inter)) inter = 0;
  volume.scl_slope = slope;
  volume.scl_inter = inter;
  for (int i = 0; i < 3; ++i) volume.spacing[i] = h.pixdim[i + 1];
  volume.qform_code = h.qform_code;
  volume.sform_code = h.sform_code;
  const double qfac = h.pixdim[0] < 0 ? -1.0 : 1.0;
  volume.qform = ToAffine(nifti_quatern_to_dmat44(h.quatern_b, h.quatern_c, h.quatern_d,
                                                  h.qoffset_x, h.qoffset_y, h.qoffset_z,
                                                  h.pixdim[1], h.pixdim[2], h.pixdim[3], qfac));
  Affine s{};
  for (int c = 0; c < 4; ++c) {
    s[0][c] = h.srow_x[c];
    s[1][c] = h.srow_y[c];
    s[2][c] = h.srow_z[c];
  }
  s[3] = {0, 0, 0, 1};
  volume.sform = s;
  return absl::OkStatus();
}

// Reads the header from `in` into `volume` (fields + native-order bytes). Sets `swap`.
absl::Status ParseHeader(ByteReader& in, const std::string& name, const NiftiLimits& limits,
                         NiftiVolume& volume, int64_t& vox_offset, bool& swap) {
  uint8_t buffer[sizeof(nifti_2_header)];
  ASSIGN_OR_RETURN(size_t got, in.Read(buffer, sizeof(nifti_1_header)));
  if (got < sizeof(nifti_1_header)) {
    return Bad(name, absl::StrCat("too short for a NIfTI header (", got, " bytes)"));
  }
  uint32_t sizeof_hdr;
  std::memcpy(&sizeof_hdr, buffer, 4);
  swap = false;
  if (sizeof_hdr != 348 && sizeof_hdr != 540) {
    sizeof_hdr = Swap32(sizeof_hdr);
    swap = true;
  }
  if (sizeof_hdr == 348) {
    nifti_1_header h;
    std::memcpy(&h, buffer, sizeof(h));
    if (swap) swap_nifti_header(&h, 1);
    if (std::memcmp(h.magic, "ni1", 4) == 0) {
      return Bad(name, "a .hdr/.img pair is not supported; convert it to a single .nii file");
    }
    if (std::memcmp(h.magic, "n+1", 4) != 0) {
      return Bad(name, "not a NIfTI-1 file (bad magic; Analyze 7.5 is not supported)");
    }
    volume.version = 1;
    volume.header.assign(reinterpret_cast<uint8_t*>(&h),
                         reinterpret_cast<uint8_t*>(&h) + sizeof(h));
    return ReadHeader(h, name, limits, volume, vox_offset);
  }
  if (sizeof_hdr == 540) {
    ASSIGN_OR_RETURN(size_t rest, in.Read(buffer + sizeof(nifti_1_header),
                                          sizeof(nifti_2_header) - sizeof(nifti_1_header)));
    if (got + rest < sizeof(nifti_2_header)) {
      return Bad(name, absl::StrCat("too short for a NIfTI-2 header (", got + rest, " bytes)"));
    }
    nifti_2_header h;
    std::memcpy(&h, buffer, sizeof(h));
    if (swap) swap_nifti_header(&h, 2);
    if (std::memcmp(h.magic, "ni2", 4) == 0) {
      return Bad(name, "a .hdr/.img pair is not supported; convert it to a single .nii file");
    }
    if (std::memcmp(h.magic, "n+2\0\r\n\032\n", 8) != 0) {
      return Bad(name, "not a NIfTI-2 file (bad magic)");
    }
    volume.version = 2;
    volume.header.assign(reinterpret_cast<uint8_t*>(&h),
                         reinterpret_cast<uint8_t*>(&h) + sizeof(h));
    return ReadHeader(h, name, limits, volume, vox_offset);
  }
  return Bad(name, "not a NIfTI-1 or NIfTI-2 file (sizeof_hdr is neither 348 nor 540)");
}

}  // namespace

std::string NiftiDimsText(const std::array<int64_t, 3>& d) {
  return absl::StrCat(d[0], "x", d[1], "x", d[2]);
}

absl::StatusOr<NiftiVolume> ParseNifti(std::string_view bytes, const std::string& name,
                                       const NiftiLimits& limits) {
  NiftiVolume volume;
  volume.source = name;
  const bool gzip = bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x1f &&
                    static_cast<uint8_t>(bytes[1]) == 0x8b;
  ByteReader in(bytes, gzip, name);
  int64_t vox_offset = 0;
  bool swap = false;
  RETURN_IF_ERROR(ParseHeader(in, name, limits, volume, vox_offset, swap));
  const int64_t header_bytes = static_cast<int64_t>(volume.header.size());
  // Skip the extensions (header end .. vox_offset).
  std::vector<uint8_t> skip(static_cast<size_t>(vox_offset - header_bytes));
  const int nbyper = VoxelBytes(volume.datatype);
  const int64_t data_bytes = volume.num_voxels() * nbyper;
  ASSIGN_OR_RETURN(size_t got_skip, in.Read(skip.data(), skip.size()));
  // Grown as data arrives, so a header that claims more than the file holds (or a gzip
  // stream that ends early) costs only what is really there.
  std::vector<uint8_t> data;
  size_t got = 0;
  constexpr size_t kChunk = size_t{16} << 20;
  while (got_skip == skip.size() && got < static_cast<size_t>(data_bytes)) {
    const size_t chunk = std::min(kChunk, static_cast<size_t>(data_bytes) - got);
    data.resize(got + chunk);
    ASSIGN_OR_RETURN(size_t n, in.Read(data.data() + got, chunk));
    got += n;
    if (n < chunk) break;
  }
  const std::string need = absl::StrCat("the header's ", NiftiDimsText(volume.dims), " ",
                                        nifti_datatype_to_string(volume.datatype), " voxels need ",
                                        data_bytes, " bytes from offset ", vox_offset);
  if (got_skip < skip.size() || got < static_cast<size_t>(data_bytes)) {
    const int64_t have = header_bytes + static_cast<int64_t>(got_skip + got);
    if (gzip && !in.complete()) {
      return Bad(name, absl::StrCat("truncated gzip stream (ends after ", have,
                                    " decompressed bytes); ", need));
    }
    return Bad(name, absl::StrCat("header dimensions disagree with the data size: ", need,
                                  ", but the file holds ", have, " bytes"));
  }
  uint8_t extra = 0;
  ASSIGN_OR_RETURN(size_t more, in.Read(&extra, 1));
  if (more > 0) {
    return Bad(name, absl::StrCat("header dimensions disagree with the data size: ", need,
                                  ", but the file holds more"));
  }
  if (gzip && !in.complete()) {
    return Bad(name, "truncated gzip stream (the gzip trailer is missing)");
  }
  volume.voxels.resize(static_cast<size_t>(volume.num_voxels()));
  ConvertAll(volume.datatype, data.data(), volume.num_voxels(), swap, volume.scl_slope,
             volume.scl_inter, volume.voxels.data());
  for (size_t i = 0; i < volume.voxels.size(); ++i) {
    if (!std::isfinite(volume.voxels[i])) {
      return Bad(name,
                 absl::StrCat("voxel ", i, " is not a finite number (", volume.voxels[i], ")"));
    }
  }
  return volume;
}

absl::StatusOr<NiftiVolume> ReadNifti(const std::string& path, const NiftiLimits& limits) {
  auto bytes = common::ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  return ParseNifti(*bytes, path, limits);
}

absl::StatusOr<NiftiVolume> ReadNiftiHeader(const std::string& path, const NiftiLimits& limits) {
  // A gzip member's first bytes inflate to the header: 64 KiB of input is far more than a
  // compressed 540-byte header (plus gzip's own header fields) needs.
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string prefix(size_t{64} << 10, '\0');
  file.read(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  prefix.resize(static_cast<size_t>(file.gcount()));
  const bool gzip = prefix.size() >= 2 && static_cast<uint8_t>(prefix[0]) == 0x1f &&
                    static_cast<uint8_t>(prefix[1]) == 0x8b;
  ByteReader in(prefix, gzip, path);
  NiftiVolume volume;
  volume.source = path;
  int64_t vox_offset = 0;
  bool swap = false;
  RETURN_IF_ERROR(ParseHeader(in, path, limits, volume, vox_offset, swap));
  return volume;
}

bool IsNiftiPath(std::string_view path) {
  const std::string lower = absl::AsciiStrToLower(Sv(path));
  return absl::EndsWith(lower, ".nii") || absl::EndsWith(lower, ".nii.gz");
}

std::string_view NiftiStem(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(Sv(name));
  if (absl::EndsWith(lower, ".nii.gz")) return name.substr(0, name.size() - 7);
  if (absl::EndsWith(lower, ".nii")) return name.substr(0, name.size() - 4);
  return name;
}

absl::StatusOr<NiftiLabels> LabelsFromVolume(const NiftiVolume& volume) {
  NiftiLabels labels;
  labels.source = volume.source;
  labels.dims = volume.dims;
  labels.ids.resize(volume.voxels.size());
  for (size_t i = 0; i < volume.voxels.size(); ++i) {
    const float v = volume.voxels[i];
    if (v != std::floor(v) || v < 0 || v > 255) {
      const int64_t nx = volume.dims[0], ny = volume.dims[1];
      const int64_t idx = static_cast<int64_t>(i);
      return Bad(volume.source, absl::StrCat("label voxel (", idx % nx, ", ", (idx / nx) % ny, ", ",
                                             idx / (nx * ny), ") = ", v,
                                             ": labels must be integer class ids in 0..255"));
    }
    labels.ids[i] = static_cast<uint8_t>(v);
  }
  return labels;
}

absl::StatusOr<NiftiLabels> ReadNiftiLabels(const std::string& path, const NiftiLimits& limits) {
  auto volume = ReadNifti(path, limits);
  if (!volume.ok()) return volume.status();
  return LabelsFromVolume(*volume);
}

absl::Status CheckSameShape(const NiftiVolume& image, const NiftiLabels& labels) {
  if (image.dims == labels.dims) return absl::OkStatus();
  return Bad(labels.source,
             absl::StrCat("shape ", NiftiDimsText(labels.dims), " differs from its image ",
                          image.source, " (", NiftiDimsText(image.dims), ")"));
}

}  // namespace segserve::data
