// File: server/data/dataset.h — the on-disk data-set format: a folder with
// images/, masks/ and dataset.json (see docs/datasets.md), read with validation
// on open, and nnU-Net's raw layout (imagesTr/labelsTr) read-only into the same
// in-memory Dataset. Either holds 2-D images, or NIfTI volumes that are sliced
// into 2-D one-channel samples.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/data/codec.h"
#include "server/data/image.h"
#include "server/data/nifti.h"
#include "server/data/shift.h"

namespace segserve::data {

struct ClassInfo {
  int id = 0;  // the value stored in mask pixels, 0..255
  std::string name;
  bool operator==(const ClassInfo &o) const { return id == o.id && name == o.name; }
};

enum class Split { kTrain, kVal, kTest };
std::string_view SplitName(Split split);
// "train", "val" (or "validation"), "test".
absl::StatusOr<Split> ParseSplit(std::string_view text);

// Fractions of the samples per split; the test split takes what train and val
// leave.
struct SplitRatios {
  double train = 0.7;
  double val = 0.15;
  double test = 0.15;
  uint64_t seed = 0;  // shuffles the sorted ids before cutting
};

// Sample ids per split.
struct SplitLists {
  std::vector<std::string> train, val, test;
};

// Assigns `ids` (any order) to splits: shuffles the sorted ids with
// ratios.seed, then the first round(train*n) go to train, the next round(val*n)
// to val, the rest to test.
absl::StatusOr<SplitLists> SplitByRatios(std::vector<std::string> ids, const SplitRatios &ratios);

struct DatasetSample {
  std::string id;          // file stem (a volume's slice: "<case>_z012"), unique
  std::string image_path;  // absolute, confined to the data-set root
  std::string mask_path;   // absolute, confined to the data-set root
  std::string domain;      // domain label; empty when the data set names none
  int height = 0;          // from the image header
  int width = 0;
  int volume = -1;  // a slice of Dataset::volumes[volume]; -1 for a 2-D image
  int slice = 0;    // its index along Dataset::slicing.axis
};

// How a NIfTI data set's volumes become samples (dataset.json "nifti").
struct VolumeSlicing {
  int axis = 2;  // the axis held fixed (nifti.h); every slice along it is a sample
  MrNormalization normalization = MrNormalization::kPercentile;  // per volume
  bool operator==(const VolumeSlicing &o) const {
    return axis == o.axis && normalization == o.normalization;
  }
};

// One NIfTI volume of a data set with its label volume.
struct DatasetVolume {
  std::string id;                 // case id: the file stem without .nii[.gz] (and _0000)
  std::string image_path;         // absolute, confined to the data-set root
  std::string label_path;         // absolute, confined to the data-set root
  std::string domain;             // as DatasetSample::domain, for all its slices
  std::array<int64_t, 3> dims{};  // nx, ny, nz from the image header
};

class VolumeCache;  // server/data/volume_cache.h

struct Dataset {
  std::string root;    // absolute
  std::string layout;  // "native" or "nnunet"
  std::string name;
  int channels = 0;
  std::vector<ClassInfo> classes;      // sorted by id
  std::vector<DatasetSample> samples;  // sorted by id
  std::vector<int> train, val, test;   // indices into samples, each sorted
  // NIfTI data sets only: the volumes (sorted by id; splits are made per volume, so all
  // slices of one volume are in one split), how they are sliced, and the decoded volumes
  // kept for LoadSample (shared by copies of this Dataset; null: none kept).
  std::vector<DatasetVolume> volumes;
  VolumeSlicing slicing;
  std::shared_ptr<VolumeCache> volume_cache;

  const std::vector<int> &split(Split s) const {
    return s == Split::kTrain ? train : s == Split::kVal ? val : test;
  }
  bool volumetric() const { return !volumes.empty(); }
};

struct OpenOptions {
  // Decode every image and mask on open (unreadable files, size mismatches,
  // mask values outside the class list). Without it only headers are read.
  bool verify_contents = true;
  int64_t max_pixels = kDefaultMaxPixels;
  // Used when dataset.json has no "splits" (always for nnU-Net, which has
  // none).
  SplitRatios default_ratios;
  // NIfTI data sets: bytes of decoded, normalised volumes LoadSample keeps (least recently
  // used dropped first), so that an epoch reading slices in random order does not inflate
  // a .nii.gz once per slice. 0: decode the volume for every slice.
  int64_t volume_cache_bytes = int64_t{512} << 20;
  NiftiLimits nifti_limits;
};

// Opens a data set folder (native or nnU-Net layout, detected by imagesTr/) and
// validates it. NotFound when the root or its dataset.json is missing;
// InvalidArgument naming the file and the problem for anything malformed.
absl::StatusOr<Dataset> OpenDataset(const std::string &root, const OpenOptions &options = {});

// The channel count `root`'s dataset.json declares (native "channels", nnU-Net
// "channel_names" or "modality"), reading nothing else: a cheap check when a job is
// submitted. Errors as OpenDataset's for a missing or malformed manifest.
absl::StatusOr<int> ReadDatasetChannels(const std::string &root);

struct LoadedSample {
  Image image;
  Mask mask;
};

// Decodes sample `index` with `shift` applied to the image (never to the mask). A slice
// of a NIfTI volume is a 1-channel float image on the normalised scale (VolumeSlicing).
// Thread-safe.
absl::StatusOr<LoadedSample> LoadSample(const Dataset &dataset, int index, const Shift &shift = {},
                                        int64_t max_pixels = kDefaultMaxPixels);

// What dataset.json says, for writing.
struct DatasetManifest {
  std::string name;
  int channels = 3;
  std::vector<ClassInfo> classes;
  std::string domain;                                // label for every image, optional
  std::map<std::string, std::string> split_domains;  // split name -> label, optional
  std::map<std::string, std::string> image_domains;  // sample id -> label, optional
  std::optional<SplitLists> split_lists;             // explicit lists, or else:
  SplitRatios ratios;                                // ratios resolved when opened
  std::optional<VolumeSlicing> nifti;                // written as "nifti" when set
};

// Writes a native data set sample by sample; dataset.json is written last
// (Finish), so a half-written folder never opens as a data set. Add is
// thread-safe.
class DatasetWriter {
 public:
  // Refuses a root that already holds a dataset.json (AlreadyExists).
  static absl::StatusOr<std::unique_ptr<DatasetWriter>> Create(
      const std::string &root, DatasetManifest manifest, ImageFormat format = ImageFormat::kPng);

  // `id` must be a plain file stem ([A-Za-z0-9_.-], not starting with '.').
  absl::Status Add(const std::string &id, const Image &image, const Mask &mask);
  absl::Status Finish();

 private:
  DatasetWriter(std::string root, DatasetManifest manifest, ImageFormat format)
      : root_(std::move(root)), manifest_(std::move(manifest)), format_(format) {}

  const std::string root_;
  const DatasetManifest manifest_;
  const ImageFormat format_;
  absl::Mutex mu_;
  std::set<std::string> ids_ ABSL_GUARDED_BY(mu_);  // added so far
};

struct NamedSample {
  std::string id;
  Image image;
  Mask mask;
};

// Convenience: DatasetWriter over `samples`.
absl::Status WriteDataset(const std::string &root, const DatasetManifest &manifest,
                          const std::vector<NamedSample> &samples,
                          ImageFormat format = ImageFormat::kPng);

// Checks a sample id is a plain file stem.
absl::Status ValidateSampleId(std::string_view id);

// Serialises a manifest to dataset.json text (used by the writer and by tests).
std::string ManifestToJson(const DatasetManifest &manifest);

}  // namespace segserve::data
