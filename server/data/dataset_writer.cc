// DatasetWriter and WriteDataset (declared in dataset.h).
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/data/absl_compat.h"
#include "server/data/dataset.h"

namespace segserve::data {
namespace fs = std::filesystem;
using nlohmann::json;

absl::Status ValidateSampleId(std::string_view id) {
  if (id.empty() || id.size() > 200 || id[0] == '.') {
    return absl::InvalidArgumentError(absl::StrCat("sample id '", Sv(id), "' is not a plain name"));
  }
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample id '", Sv(id), "' may hold only letters, digits, '_', '-' and '.'"));
    }
  }
  return absl::OkStatus();
}

std::string ManifestToJson(const DatasetManifest &m) {
  json j;
  j["format"] = "segserve-dataset";
  j["version"] = 1;
  j["name"] = m.name;
  j["channels"] = m.channels;
  json classes = json::array();
  for (const ClassInfo &c : m.classes) classes.push_back({{"id", c.id}, {"name", c.name}});
  j["classes"] = classes;
  if (!m.domain.empty()) j["domain"] = m.domain;
  if (!m.split_domains.empty()) j["split_domains"] = m.split_domains;
  if (!m.image_domains.empty()) j["image_domains"] = m.image_domains;
  if (m.split_lists.has_value()) {
    j["splits"] = {{"train", m.split_lists->train},
                   {"val", m.split_lists->val},
                   {"test", m.split_lists->test}};
  } else {
    j["splits"] = {
        {"ratios", {{"train", m.ratios.train}, {"val", m.ratios.val}, {"test", m.ratios.test}}},
        {"seed", m.ratios.seed}};
  }
  if (m.nifti.has_value()) {
    j["nifti"] = {{"axis", m.nifti->axis},
                  {"normalization", std::string(MrNormalizationName(m.nifti->normalization))}};
  }
  return j.dump(2) + "\n";
}

absl::StatusOr<std::unique_ptr<DatasetWriter>> DatasetWriter::Create(const std::string &root,
                                                                     DatasetManifest manifest,
                                                                     ImageFormat format) {
  std::error_code ec;
  if (fs::exists(root + "/dataset.json", ec)) {
    return absl::AlreadyExistsError(absl::StrCat("dataset ", root, " already exists"));
  }
  if (manifest.channels < 1 || manifest.channels > 4 || manifest.classes.empty()) {
    return absl::InvalidArgumentError("dataset manifest: needs 1..4 channels and classes");
  }
  RETURN_IF_ERROR(common::MakeDirectories(root + "/images"));
  RETURN_IF_ERROR(common::MakeDirectories(root + "/masks"));
  return std::unique_ptr<DatasetWriter>(new DatasetWriter(root, std::move(manifest), format));
}

absl::Status DatasetWriter::Add(const std::string &id, const Image &image, const Mask &mask) {
  RETURN_IF_ERROR(ValidateSampleId(id));
  RETURN_IF_ERROR(ValidateImage(image));
  RETURN_IF_ERROR(ValidateMask(mask));
  if (image.height != mask.height || image.width != mask.width) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample '", id, "': image and mask sizes differ"));
  }
  if (image.channels != manifest_.channels) {
    return absl::InvalidArgumentError(absl::StrCat("sample '", id, "': image has ", image.channels,
                                                   " channels, manifest says ",
                                                   manifest_.channels));
  }
  {
    absl::MutexLock lock(&mu_);
    if (!ids_.insert(id).second) {
      return absl::AlreadyExistsError(absl::StrCat("sample '", id, "' was already added"));
    }
  }
  const char *ext = format_ == ImageFormat::kPng    ? ".png"
                    : format_ == ImageFormat::kJpeg ? ".jpg"
                                                    : ".tif";
  RETURN_IF_ERROR(WriteImageFile(root_ + "/images/" + id + ext, image));
  return WriteMaskFile(root_ + "/masks/" + id + ".png", mask);
}

absl::Status DatasetWriter::Finish() {
  return common::WriteFileAtomically(root_ + "/dataset.json", ManifestToJson(manifest_));
}

absl::Status WriteDataset(const std::string &root, const DatasetManifest &manifest,
                          const std::vector<NamedSample> &samples, ImageFormat format) {
  ASSIGN_OR_RETURN(std::unique_ptr<DatasetWriter> writer,
                   DatasetWriter::Create(root, manifest, format));
  for (const NamedSample &s : samples) RETURN_IF_ERROR(writer->Add(s.id, s.image, s.mask));
  return writer->Finish();
}

}  // namespace segserve::data
