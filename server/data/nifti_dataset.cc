// NIfTI data sets: volumes listed by the native and nnU-Net readers become one sample per
// slice; LoadSample's slices come from the data set's VolumeCache. Declarations in
// dataset_internal.h; the format in docs/datasets.md ("NIfTI data sets").
#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/common/status_macros.h"
#include "server/data/absl_compat.h"
#include "server/data/dataset_internal.h"
#include "server/data/volume_cache.h"

namespace segserve::data::internal {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

absl::Status InDataset(const std::string &root, const absl::Status &status) {
  return absl::Status(status.code(), absl::StrCat("dataset ", root, ": ", status.message()));
}

// Slice sides along `axis`: rows x columns (nifti.h).
std::pair<int64_t, int64_t> SliceShape(const std::array<int64_t, 3> &dims, int axis) {
  const int fast = axis == 0 ? 1 : 0;
  const int slow = axis == 2 ? 1 : 2;
  return {dims[slow], dims[fast]};
}

absl::Status CheckLabelValues(const Dataset &ds, const std::string &path,
                              const std::vector<uint8_t> &ids) {
  bool allowed[256] = {};
  for (const ClassInfo &c : ds.classes) allowed[c.id] = true;
  bool seen[256] = {};
  for (uint8_t v : ids) seen[v] = true;
  for (int v = 0; v < 256; ++v) {
    if (seen[v] && !allowed[v]) {
      std::vector<int> declared;
      for (const ClassInfo &c : ds.classes) declared.push_back(c.id);
      return absl::InvalidArgumentError(
          absl::StrCat("dataset ", ds.root, ": mask ", path, " holds value ", v,
                       ", which is not in the class list [", absl::StrJoin(declared, ", "), "]"));
    }
  }
  return absl::OkStatus();
}

absl::Status VerifyVolume(const Dataset &ds, DatasetVolume *v, const OpenOptions &options) {
  if (options.verify_contents) {
    absl::StatusOr<NiftiVolume> image = ReadNifti(v->image_path, options.nifti_limits);
    if (!image.ok()) return InDataset(ds.root, image.status());
    absl::StatusOr<NiftiLabels> labels = ReadNiftiLabels(v->label_path, options.nifti_limits);
    if (!labels.ok()) return InDataset(ds.root, labels.status());
    if (absl::Status s = CheckSameShape(*image, *labels); !s.ok()) return InDataset(ds.root, s);
    RETURN_IF_ERROR(CheckLabelValues(ds, v->label_path, labels->ids));
    v->dims = image->dims;
  } else {
    absl::StatusOr<NiftiVolume> image = ReadNiftiHeader(v->image_path, options.nifti_limits);
    if (!image.ok()) return InDataset(ds.root, image.status());
    absl::StatusOr<NiftiVolume> label = ReadNiftiHeader(v->label_path, options.nifti_limits);
    if (!label.ok()) return InDataset(ds.root, label.status());
    NiftiLabels shape;
    shape.source = v->label_path;
    shape.dims = label->dims;
    if (absl::Status s = CheckSameShape(*image, shape); !s.ok()) return InDataset(ds.root, s);
    v->dims = image->dims;
  }
  const auto [rows, cols] = SliceShape(v->dims, ds.slicing.axis);
  if (rows * cols > options.max_pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", ds.root, ": ", v->image_path, ": slices of ", cols, "x", rows,
                     " exceed the limit of ", options.max_pixels, " pixels"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VolumeSlicing> ParseVolumeSlicing(const std::string &root, const json &manifest) {
  VolumeSlicing slicing;
  if (!manifest.contains("nifti")) return slicing;
  const json &n = manifest["nifti"];
  const auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", root, ": dataset.json nifti", Sv(what)));
  };
  if (!n.is_object()) return bad(": must be an object, as in {\"axis\": 2}");
  for (const auto &[key, value] : n.items()) {
    if (key == "axis") {
      if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > 2) {
        return bad(absl::StrCat(".axis: must be 0, 1 or 2, got ", value.dump()));
      }
      slicing.axis = static_cast<int>(value.get<int64_t>());
    } else if (key == "normalization") {
      absl::StatusOr<MrNormalization> method = value.is_string()
                                                   ? ParseMrNormalization(value.get<std::string>())
                                                   : absl::InvalidArgumentError("not a string");
      if (!method.ok()) {
        return bad(absl::StrCat(".normalization: must be \"percentile\" or \"zscore\", got ",
                                value.dump()));
      }
      slicing.normalization = *method;
    } else {
      return bad(absl::StrCat(".", key, ": unknown key (expected axis and normalization)"));
    }
  }
  return slicing;
}

absl::StatusOr<bool> HoldsVolumes(const std::string &root, const std::string &subdir,
                                  const std::map<std::string, std::string> &files) {
  size_t volumes = 0;
  for (const auto &[id, path] : files) volumes += IsNiftiPath(path) ? 1 : 0;
  if (volumes != 0 && volumes != files.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", root, ": ", subdir,
                     "/ mixes NIfTI volumes with 2-D images; a data set holds one or the other"));
  }
  return volumes != 0;
}

absl::StatusOr<DatasetVolume> VolumeWithLabels(const std::string &root, const std::string &subdir,
                                               const std::string &id,
                                               const std::string &image_path) {
  for (const char *ext : {".nii.gz", ".nii"}) {
    const std::string relative = subdir + "/" + id + ext;
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(root + "/" + relative, ec))) continue;
    DatasetVolume v;
    v.id = id;
    v.image_path = image_path;
    ASSIGN_OR_RETURN(v.label_path, ConfinedPath(root, relative));
    return v;
  }
  return absl::InvalidArgumentError(absl::StrCat("dataset ", root, ": missing mask ", subdir, "/",
                                                 id, ".nii.gz for volume ", image_path));
}

std::string SliceId(const std::string &volume_id, int axis, int64_t slice, int64_t count) {
  int width = 3;
  for (int64_t n = count - 1; n >= 1000; n /= 10) ++width;
  return absl::StrFormat("%s_%c%0*d", volume_id, "xyz"[axis], width, slice);
}

absl::Status ExpandVolumes(Dataset *ds, const OpenOptions &options) {
  if (ds->channels != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", ds->root, ": NIfTI volumes are sliced into 1-channel images; ",
                     "dataset.json says ", ds->channels, " channels"));
  }
  std::sort(ds->volumes.begin(), ds->volumes.end(),
            [](const DatasetVolume &a, const DatasetVolume &b) { return a.id < b.id; });
  ds->samples.clear();
  std::set<std::string> ids;
  for (size_t v = 0; v < ds->volumes.size(); ++v) {
    DatasetVolume &volume = ds->volumes[v];
    RETURN_IF_ERROR(VerifyVolume(*ds, &volume, options));
    const int64_t count = NumSlices(volume.dims, ds->slicing.axis);
    const auto [rows, cols] = SliceShape(volume.dims, ds->slicing.axis);
    for (int64_t k = 0; k < count; ++k) {
      DatasetSample s;
      s.id = SliceId(volume.id, ds->slicing.axis, k, count);
      s.image_path = volume.image_path;
      s.mask_path = volume.label_path;
      s.domain = volume.domain;
      s.height = static_cast<int>(rows);
      s.width = static_cast<int>(cols);
      s.volume = static_cast<int>(v);
      s.slice = static_cast<int>(k);
      if (!ids.insert(s.id).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("dataset ", ds->root, ": two volumes give the slice id '", s.id, "'"));
      }
      ds->samples.push_back(std::move(s));
    }
  }
  ds->volume_cache = std::make_shared<VolumeCache>(options.volume_cache_bytes);
  return absl::OkStatus();
}

absl::StatusOr<LoadedSample> LoadVolumeSlice(const Dataset &ds, const DatasetSample &s) {
  if (s.volume < 0 || s.volume >= static_cast<int>(ds.volumes.size())) {
    return absl::InternalError(
        absl::StrCat("dataset ", ds.root, ": sample ", s.id, " names no volume"));
  }
  const DatasetVolume &v = ds.volumes[s.volume];
  const VolumeCache::Decoder decode =
      [&]() -> absl::StatusOr<std::shared_ptr<const DecodedVolume>> {
    absl::StatusOr<NiftiVolume> image = ReadNifti(v.image_path);
    if (!image.ok()) return InDataset(ds.root, image.status());
    absl::StatusOr<NiftiLabels> labels = ReadNiftiLabels(v.label_path);
    if (!labels.ok()) return InDataset(ds.root, labels.status());
    if (absl::Status st = CheckSameShape(*image, *labels); !st.ok()) return InDataset(ds.root, st);
    if (image->dims != v.dims) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset ", ds.root, ": ", v.image_path,
                       " changed since the data set was opened (its shape differs)"));
    }
    RETURN_IF_ERROR(CheckLabelValues(ds, v.label_path, labels->ids));
    auto decoded = std::make_shared<DecodedVolume>();
    decoded->dims = image->dims;
    decoded->voxels = std::move(image->voxels);
    decoded->labels = std::move(labels->ids);
    NormalizationOptions normalization;
    normalization.method = ds.slicing.normalization;
    NormalizeIntensities(decoded->voxels, normalization);
    return std::shared_ptr<const DecodedVolume>(std::move(decoded));
  };
  absl::StatusOr<std::shared_ptr<const DecodedVolume>> volume =
      ds.volume_cache ? ds.volume_cache->Get(s.volume, decode) : decode();
  RETURN_IF_ERROR(volume.status());
  const DecodedVolume &d = **volume;
  if (s.slice < 0 || s.slice >= NumSlices(d.dims, ds.slicing.axis)) {
    return absl::InternalError(
        absl::StrCat("dataset ", ds.root, ": sample ", s.id, " is outside its volume"));
  }
  LoadedSample out;
  out.image = ExtractSlice(d.voxels, d.dims, ds.slicing.axis, s.slice);
  out.mask = ExtractMaskSlice(d.labels, d.dims, ds.slicing.axis, s.slice);
  return out;
}

}  // namespace segserve::data::internal
