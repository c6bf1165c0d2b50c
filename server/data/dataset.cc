#include "server/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/data/absl_compat.h"
#include "server/data/dataset_internal.h"
#include "server/data/nnunet.h"
#include "server/data/random.h"

namespace segserve::data {
namespace fs = std::filesystem;
using nlohmann::json;

std::string_view SplitName(Split split) {
  switch (split) {
    case Split::kTrain:
      return "train";
    case Split::kVal:
      return "val";
    case Split::kTest:
      return "test";
  }
  return "train";
}

absl::StatusOr<Split> ParseSplit(std::string_view text) {
  const std::string lower = absl::AsciiStrToLower(Sv(text));
  if (lower == "train") return Split::kTrain;
  if (lower == "val" || lower == "validation") return Split::kVal;
  if (lower == "test") return Split::kTest;
  return absl::InvalidArgumentError(
      absl::StrCat("split: unknown split '", Sv(text), "' (expected train, val or test)"));
}

absl::StatusOr<SplitLists> SplitByRatios(std::vector<std::string> ids, const SplitRatios &r) {
  if (r.train < 0 || r.val < 0 || r.test < 0 || r.train + r.val + r.test > 1.0 + 1e-6 ||
      r.train + r.val + r.test < 1.0 - 1e-6) {
    return absl::InvalidArgumentError(
        absl::StrCat("splits.ratios: train, val and test must be >= 0 and sum to 1 (got ", r.train,
                     ", ", r.val, ", ", r.test, ")"));
  }
  std::sort(ids.begin(), ids.end());
  Rng rng(MixSeed(r.seed, 0x5b1175));
  for (size_t i = ids.size(); i > 1; --i) {
    std::swap(ids[i - 1], ids[rng.UniformInt(0, static_cast<int>(i - 1))]);
  }
  const size_t n = ids.size();
  const size_t n_train = std::min(n, static_cast<size_t>(std::llround(r.train * n)));
  const size_t n_val = std::min(n - n_train, static_cast<size_t>(std::llround(r.val * n)));
  SplitLists lists;
  lists.train.assign(ids.begin(), ids.begin() + n_train);
  lists.val.assign(ids.begin() + n_train, ids.begin() + n_train + n_val);
  lists.test.assign(ids.begin() + n_train + n_val, ids.end());
  return lists;
}

namespace internal {

absl::StatusOr<json> ReadJsonFile(const std::string &path) {
  ASSIGN_OR_RETURN(const std::string text, common::ReadFile(path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  return j;
}

absl::StatusOr<std::string> ConfinedPath(const std::string &root, const std::string &relative) {
  absl::StatusOr<std::string> path = common::ResolveUnderRoot(root, relative, "data set file");
  if (!path.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("dataset ", root, ": '", relative,
                                                   "' escapes the data-set root (",
                                                   path.status().message(), ")"));
  }
  return path;
}

absl::StatusOr<std::map<std::string, std::string>> ListImageFiles(const std::string &root,
                                                                  const std::string &subdir,
                                                                  std::string_view strip_suffix) {
  ASSIGN_OR_RETURN(const std::string dir, ConfinedPath(root, subdir));
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", root, ": missing directory ", subdir, "/"));
  }
  std::vector<std::string> names;
  for (const auto &entry : fs::directory_iterator(dir, ec)) {
    names.push_back(entry.path().filename().string());
  }
  if (ec)
    return absl::InvalidArgumentError(absl::StrCat("dataset ", root, ": cannot list ", subdir));
  std::sort(names.begin(), names.end());
  std::map<std::string, std::string> files;
  for (const std::string &name : names) {
    const bool volume = IsNiftiPath(name);
    if (name.empty() || name[0] == '.' || (!volume && !FormatFromPath(name).ok())) continue;
    std::string stem = volume ? std::string(NiftiStem(name)) : name.substr(0, name.rfind('.'));
    if (!strip_suffix.empty()) {
      if (stem.size() <= strip_suffix.size() ||
          stem.compare(stem.size() - strip_suffix.size(), strip_suffix.size(), strip_suffix) != 0) {
        continue;
      }
      stem.resize(stem.size() - strip_suffix.size());
    }
    ASSIGN_OR_RETURN(std::string path, ConfinedPath(root, subdir + "/" + name));
    if (!files.emplace(stem, std::move(path)).second) {
      return absl::InvalidArgumentError(absl::StrCat("dataset ", root, ": two files in ", subdir,
                                                     "/ share the sample id '", stem, "'"));
    }
  }
  return files;
}

int JsonInt(const nlohmann::json &value) {
  if (value.is_number_unsigned()) {
    const uint64_t x = value.get<uint64_t>();
    if (x <= static_cast<uint64_t>(std::numeric_limits<int>::max())) return static_cast<int>(x);
  } else if (value.is_number_integer()) {
    const int64_t x = value.get<int64_t>();
    if (x >= std::numeric_limits<int>::min() && x <= std::numeric_limits<int>::max()) {
      return static_cast<int>(x);
    }
  }
  throw nlohmann::json::type_error::create(302, "expected an integer within int's range", &value);
}

namespace {

absl::Status VerifySample(const Dataset &ds, DatasetSample *s, const OpenOptions &options) {
  const auto unreadable = [&](const std::string &path, const absl::Status &st) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", ds.root, ": unreadable file ", path, ": ", st.message()));
  };
  absl::StatusOr<std::string> image_bytes = common::ReadFile(s->image_path);
  if (!image_bytes.ok()) return unreadable(s->image_path, image_bytes.status());
  absl::StatusOr<ImageInfo> info = ProbeImage(*image_bytes);
  if (!info.ok()) return unreadable(s->image_path, info.status());
  s->height = info->height;
  s->width = info->width;
  int channels = info->channels;
  if (options.verify_contents) {
    absl::StatusOr<Image> image = DecodeImage(*image_bytes, options.max_pixels);
    if (!image.ok()) return unreadable(s->image_path, image.status());
    channels = image->channels;
    absl::StatusOr<std::string> mask_bytes = common::ReadFile(s->mask_path);
    if (!mask_bytes.ok()) return unreadable(s->mask_path, mask_bytes.status());
    absl::StatusOr<Mask> mask = DecodeMask(*mask_bytes, options.max_pixels);
    if (!mask.ok()) return unreadable(s->mask_path, mask.status());
    if (mask->height != s->height || mask->width != s->width) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dataset ", ds.root, ": size mismatch for sample '", s->id, "': image ", s->width, "x",
          s->height, ", mask ", mask->width, "x", mask->height, " (", s->mask_path, ")"));
    }
    bool allowed[256] = {};
    for (const ClassInfo &c : ds.classes) allowed[c.id] = true;
    for (uint8_t v : mask->ids) {
      if (!allowed[v]) {
        std::vector<int> ids;
        for (const ClassInfo &c : ds.classes) ids.push_back(c.id);
        return absl::InvalidArgumentError(
            absl::StrCat("dataset ", ds.root, ": mask ", s->mask_path, " holds value ", int{v},
                         ", which is not in the class list [", absl::StrJoin(ids, ", "), "]"));
      }
    }
  }
  if (channels != ds.channels) {
    return absl::InvalidArgumentError(absl::StrCat("dataset ", ds.root, ": image ", s->image_path,
                                                   " has ", channels,
                                                   " channels, dataset.json says ", ds.channels));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FinishDataset(Dataset *ds, const std::optional<SplitLists> &lists,
                           const SplitRatios &ratios, const OpenOptions &options) {
  if (ds->channels < 1 || ds->channels > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", ds->root, ": channels must be 1..4 (got ", ds->channels, ")"));
  }
  if (ds->classes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("dataset ", ds->root, ": no classes listed"));
  }
  std::sort(ds->classes.begin(), ds->classes.end(),
            [](const ClassInfo &a, const ClassInfo &b) { return a.id < b.id; });
  for (size_t i = 0; i < ds->classes.size(); ++i) {
    if (ds->classes[i].id < 0 || ds->classes[i].id > 255 ||
        (i > 0 && ds->classes[i].id == ds->classes[i - 1].id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset ", ds->root, ": class ids must be unique and in 0..255 (got ",
                       ds->classes[i].id, ")"));
    }
  }
  if (ds->volumetric()) RETURN_IF_ERROR(ExpandVolumes(ds, options));
  std::sort(ds->samples.begin(), ds->samples.end(),
            [](const DatasetSample &a, const DatasetSample &b) { return a.id < b.id; });
  if (!ds->volumetric()) {
    for (DatasetSample &s : ds->samples) RETURN_IF_ERROR(VerifySample(*ds, &s, options));
  }

  // Splits are made per unit: a sample, or a whole volume (so that slices of one volume
  // never land in both train and test).
  std::map<std::string, std::vector<int>> units;
  for (size_t i = 0; i < ds->samples.size(); ++i) {
    const DatasetSample &s = ds->samples[i];
    units[s.volume >= 0 ? ds->volumes[s.volume].id : s.id].push_back(static_cast<int>(i));
  }
  const char *unit_name = ds->volumetric() ? "volume" : "sample";
  SplitLists resolved;
  if (lists.has_value()) {
    resolved = *lists;
  } else {
    std::vector<std::string> ids;
    for (const auto &[id, samples] : units) ids.push_back(id);
    ASSIGN_OR_RETURN(resolved, SplitByRatios(std::move(ids), ratios));
  }
  std::set<std::string> seen;
  const auto convert = [&](const std::vector<std::string> &ids, std::string_view name,
                           std::vector<int> *out) -> absl::Status {
    out->clear();
    for (const std::string &id : ids) {
      auto it = units.find(id);
      if (it == units.end()) {
        return absl::InvalidArgumentError(absl::StrCat("dataset ", ds->root, ": splits.", Sv(name),
                                                       " names unknown ", unit_name, " '", id,
                                                       "'"));
      }
      if (!seen.insert(id).second) {
        return absl::InvalidArgumentError(absl::StrCat("dataset ", ds->root, ": ", unit_name, " '",
                                                       id, "' appears in more than one split"));
      }
      out->insert(out->end(), it->second.begin(), it->second.end());
    }
    std::sort(out->begin(), out->end());
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(convert(resolved.train, "train", &ds->train));
  RETURN_IF_ERROR(convert(resolved.val, "val", &ds->val));
  RETURN_IF_ERROR(convert(resolved.test, "test", &ds->test));
  return absl::OkStatus();
}

}  // namespace internal

namespace {

absl::StatusOr<Dataset> OpenNative(const std::string &root, const OpenOptions &options) {
  ASSIGN_OR_RETURN(const json j, internal::ReadJsonFile(root + "/dataset.json"));
  Dataset ds;
  ds.root = root;
  ds.layout = "native";
  std::optional<SplitLists> lists;
  SplitRatios ratios = options.default_ratios;
  std::map<std::string, std::string> image_domains, split_domains;
  std::string domain;
  try {
    ds.name = j.value("name", fs::path(root).filename().string());
    ds.channels = internal::JsonInt(j.at("channels"));
    for (const json &c : j.at("classes")) {
      ds.classes.push_back({internal::JsonInt(c.at("id")), c.at("name").get<std::string>()});
    }
    domain = j.value("domain", std::string());
    if (j.contains("image_domains"))
      image_domains = j["image_domains"].get<decltype(image_domains)>();
    if (j.contains("split_domains"))
      split_domains = j["split_domains"].get<decltype(split_domains)>();
    if (j.contains("splits")) {
      const json &s = j["splits"];
      if (s.contains("ratios")) {
        ratios.train = s["ratios"].value("train", 0.0);
        ratios.val = s["ratios"].value("val", 0.0);
        ratios.test = s["ratios"].value("test", 0.0);
        ratios.seed = s.value("seed", uint64_t{0});
      } else {
        lists.emplace();
        lists->train = s.value("train", std::vector<std::string>());
        lists->val = s.value("val", std::vector<std::string>());
        lists->test = s.value("test", std::vector<std::string>());
      }
    }
  } catch (const json::exception &e) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", root, ": dataset.json is malformed: ", e.what()));
  }
  ASSIGN_OR_RETURN(ds.slicing, internal::ParseVolumeSlicing(root, j));
  ASSIGN_OR_RETURN(const auto images, internal::ListImageFiles(root, "images", ""));
  ASSIGN_OR_RETURN(const bool volumes, internal::HoldsVolumes(root, "images", images));
  std::map<std::string, std::string> id_split;
  if (lists.has_value()) {
    for (const auto &id : lists->train) id_split[id] = "train";
    for (const auto &id : lists->val) id_split[id] = "val";
    for (const auto &id : lists->test) id_split[id] = "test";
  }
  for (const auto &[id, image_path] : images) {
    std::string sample_domain = domain;
    if (auto it = id_split.find(id); it != id_split.end()) {
      if (auto d = split_domains.find(it->second); d != split_domains.end()) {
        sample_domain = d->second;
      }
    }
    if (auto it = image_domains.find(id); it != image_domains.end()) sample_domain = it->second;
    if (volumes) {
      ASSIGN_OR_RETURN(DatasetVolume v, internal::VolumeWithLabels(root, "masks", id, image_path));
      v.domain = std::move(sample_domain);
      ds.volumes.push_back(std::move(v));
      continue;
    }
    const std::string mask_rel = "masks/" + id + ".png";
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(root + "/" + mask_rel, ec))) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset ", root, ": missing mask ", mask_rel, " for image ", image_path));
    }
    DatasetSample s;
    s.id = id;
    s.image_path = image_path;
    ASSIGN_OR_RETURN(s.mask_path, internal::ConfinedPath(root, mask_rel));
    s.domain = std::move(sample_domain);
    ds.samples.push_back(std::move(s));
  }
  if (ds.samples.empty() && ds.volumes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("dataset ", root, ": images/ holds no images"));
  }
  RETURN_IF_ERROR(internal::FinishDataset(&ds, lists, ratios, options));
  return ds;
}

}  // namespace

absl::StatusOr<Dataset> OpenDataset(const std::string &root_in, const OpenOptions &options) {
  std::error_code ec;
  const std::string root = fs::weakly_canonical(fs::absolute(root_in), ec).string();
  if (ec || !fs::is_directory(root, ec)) {
    return absl::NotFoundError(absl::StrCat("dataset ", root_in, ": no such directory"));
  }
  if (fs::is_directory(root + "/imagesTr", ec)) return OpenNnUnetDataset(root, options);
  if (!fs::exists(root + "/dataset.json", ec)) {
    return absl::NotFoundError(absl::StrCat("dataset ", root_in, ": no dataset.json"));
  }
  return OpenNative(root, options);
}

absl::StatusOr<int> ReadDatasetChannels(const std::string &root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(absl::StrCat("dataset ", root, ": no such directory"));
  }
  const bool nnunet = fs::is_directory(root + "/imagesTr", ec);
  ASSIGN_OR_RETURN(const json j, internal::ReadJsonFile(root + "/dataset.json"));
  try {
    if (!nnunet) return internal::JsonInt(j.at("channels"));
    const json &channels = j.contains("channel_names") ? j.at("channel_names") : j.at("modality");
    if (!channels.is_object() && !channels.is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset ", root, ": dataset.json channel_names is not an object"));
    }
    return static_cast<int>(channels.size());
  } catch (const json::exception &e) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", root, ": dataset.json is malformed: ", e.what()));
  }
}

absl::StatusOr<LoadedSample> LoadSample(const Dataset &dataset, int index, const Shift &shift,
                                        int64_t max_pixels) {
  if (index < 0 || index >= static_cast<int>(dataset.samples.size())) {
    return absl::OutOfRangeError(absl::StrCat("dataset ", dataset.root, ": no sample ", index));
  }
  const DatasetSample &s = dataset.samples[index];
  if (s.volume >= 0) {
    ASSIGN_OR_RETURN(LoadedSample slice, internal::LoadVolumeSlice(dataset, s));
    RETURN_IF_ERROR(ApplyShift(shift, &slice.image));
    return slice;
  }
  LoadedSample out;
  ASSIGN_OR_RETURN(out.image, ReadImageFile(s.image_path, max_pixels));
  ASSIGN_OR_RETURN(out.mask, ReadMaskFile(s.mask_path, max_pixels));
  if (out.image.height != out.mask.height || out.image.width != out.mask.width) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", dataset.root, ": size mismatch for sample '", s.id, "'"));
  }
  RETURN_IF_ERROR(ApplyShift(shift, &out.image));
  return out;
}

}  // namespace segserve::data
