// File: server/data/volume_cache.h — decoded, normalised NIfTI volumes of one data set,
// kept in memory up to a byte budget (least recently used dropped first), so that a
// training epoch, which reads slices in random order, inflates each .nii.gz about once
// instead of once per slice. Thread-safe: the loader's workers read through one cache, and
// a volume several of them want at once is decoded once (the others wait for it).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace segserve::data {

// A volume ready for slicing: normalised intensities and label ids, voxel order as in
// NiftiVolume.
struct DecodedVolume {
  std::array<int64_t, 3> dims{};
  std::vector<float> voxels;
  std::vector<uint8_t> labels;

  int64_t bytes() const {
    return static_cast<int64_t>(voxels.size() * sizeof(float) + labels.size());
  }
};

class VolumeCache {
 public:
  using Decoder = std::function<absl::StatusOr<std::shared_ptr<const DecodedVolume>>()>;

  // `max_bytes` 0 keeps nothing (every Get decodes).
  explicit VolumeCache(int64_t max_bytes) : max_bytes_(max_bytes) {}

  // Volume `key`: from memory, or from `decode` (run without the lock; an error is
  // returned and not kept). A volume larger than the budget is returned but not kept.
  absl::StatusOr<std::shared_ptr<const DecodedVolume>> Get(int key, const Decoder &decode);

  struct Stats {
    int64_t hits = 0;
    int64_t misses = 0;  // decodes
    int64_t bytes = 0;   // held now
    int64_t evictions = 0;
  };
  Stats stats() const;
  int64_t max_bytes() const { return max_bytes_; }

 private:
  struct Entry {
    std::shared_ptr<const DecodedVolume> volume;  // null while being decoded
    std::list<int>::iterator lru;                 // valid when volume is set
  };
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t max_bytes_;
  mutable absl::Mutex mu_;
  absl::CondVar decoded_;
  std::map<int, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<int> lru_ ABSL_GUARDED_BY(mu_);  // most recently used first
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace segserve::data
