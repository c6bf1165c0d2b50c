#include "server/data/nnunet.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/data/codec.h"
#include "server/data/dataset_internal.h"

namespace segserve::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// nnU-Net v2 writes {"name": id}, v1 {"id-as-string": name}.
absl::StatusOr<std::vector<ClassInfo>> ParseLabels(const std::string &root, const json &labels) {
  std::vector<ClassInfo> classes;
  for (const auto &[key, value] : labels.items()) {
    int id = 0;
    if (value.is_number_integer()) {
      classes.push_back({internal::JsonInt(value), key});
    } else if (value.is_string() && absl::SimpleAtoi(key, &id)) {
      classes.push_back({id, value.get<std::string>()});
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset ", root, ": dataset.json labels entry '", key,
                       "' is not a class id (region-based labels are not supported)"));
    }
  }
  return classes;
}

}  // namespace

absl::StatusOr<Dataset> OpenNnUnetDataset(const std::string &root, const OpenOptions &options) {
  ASSIGN_OR_RETURN(const json j, internal::ReadJsonFile(root + "/dataset.json"));
  Dataset ds;
  ds.root = root;
  ds.layout = "nnunet";
  try {
    ds.name = j.value("name", fs::path(root).filename().string());
    const json &channels = j.contains("channel_names") ? j.at("channel_names") : j.at("modality");
    ds.channels = static_cast<int>(channels.size());
    ASSIGN_OR_RETURN(ds.classes, ParseLabels(root, j.at("labels")));
    ASSIGN_OR_RETURN(ds.slicing, internal::ParseVolumeSlicing(root, j));
  } catch (const json::exception &e) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", root,
                     ": nnU-Net dataset.json is malformed (needs labels and channel_names "
                     "or modality): ",
                     e.what()));
  }
  ASSIGN_OR_RETURN(const auto images, internal::ListImageFiles(root, "imagesTr", "_0000"));
  ASSIGN_OR_RETURN(const auto extra, internal::ListImageFiles(root, "imagesTr", "_0001"));
  if (!extra.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", root, ": case '", extra.begin()->first,
                     "' stores channels in separate files; only one file per "
                     "case (_0000) is supported"));
  }
  ASSIGN_OR_RETURN(const bool volumes, internal::HoldsVolumes(root, "imagesTr", images));
  for (const auto &[id, image_path] : images) {
    if (volumes) {
      ASSIGN_OR_RETURN(DatasetVolume v,
                       internal::VolumeWithLabels(root, "labelsTr", id, image_path));
      ds.volumes.push_back(std::move(v));
      continue;
    }
    std::string mask_rel;
    for (const char *ext : {".png", ".tif", ".tiff"}) {
      std::error_code ec;
      if (fs::exists(fs::symlink_status(root + "/labelsTr/" + id + ext, ec))) {
        mask_rel = "labelsTr/" + id + ext;
        break;
      }
    }
    if (mask_rel.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("dataset ", root, ": missing mask labelsTr/",
                                                     id, ".png for image ", image_path));
    }
    DatasetSample s;
    s.id = id;
    s.image_path = image_path;
    ASSIGN_OR_RETURN(s.mask_path, internal::ConfinedPath(root, mask_rel));
    ds.samples.push_back(std::move(s));
  }
  if (ds.samples.empty() && ds.volumes.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", root, ": imagesTr/ holds no <case>_0000 images"));
  }
  RETURN_IF_ERROR(internal::FinishDataset(&ds, std::nullopt, options.default_ratios, options));
  return ds;
}

absl::Status ExportNnUnetDataset(const Dataset &dataset, const std::string &out_root) {
  if (dataset.volumetric()) {
    return absl::FailedPreconditionError(
        absl::StrCat("dataset ", dataset.name,
                     ": holds NIfTI volumes; only 2-D image data sets can be exported as "
                     "nnU-Net PNG sets"));
  }
  for (const DatasetSample &s : dataset.samples) {
    ASSIGN_OR_RETURN(const Image image, ReadImageFile(s.image_path));
    ASSIGN_OR_RETURN(const Mask mask, ReadMaskFile(s.mask_path));
    RETURN_IF_ERROR(WriteImageFile(out_root + "/imagesTr/" + s.id + "_0000.png", image));
    RETURN_IF_ERROR(WriteMaskFile(out_root + "/labelsTr/" + s.id + ".png", mask));
  }
  json j;
  j["name"] = dataset.name;
  static const char *kRgba[] = {"R", "G", "B", "A"};
  json channels = json::object();
  for (int c = 0; c < dataset.channels; ++c) {
    channels[std::to_string(c)] = dataset.channels == 1 ? "gray" : kRgba[c];
  }
  j["channel_names"] = channels;
  json labels = json::object();
  for (const ClassInfo &c : dataset.classes) labels[c.name] = c.id;
  j["labels"] = labels;
  j["numTraining"] = dataset.samples.size();
  j["file_ending"] = ".png";
  return common::WriteFileAtomically(out_root + "/dataset.json", j.dump(2) + "\n");
}

}  // namespace segserve::data
