// File: server/data/loader.h — the training/evaluation loader: seeded
// shuffling, batching, augmentation and an optional on-the-fly domain shift,
// decoded on a small worker pool that prefetches a bounded number of batches.
// Output is plain float NCHW plus uint8 masks, so this library needs no torch.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/common/thread_pool.h"
#include "server/data/augment.h"
#include "server/data/dataset.h"
#include "server/data/shift.h"

namespace segserve::data {

struct Batch {
  int n = 0, c = 0, h = 0, w = 0;
  std::vector<float> images;     // n * c * h * w, normalised
  std::vector<uint8_t> masks;    // n * h * w class ids
  std::vector<std::string> ids;  // sample ids, in batch order
  int epoch = 0;
  int index = 0;  // batch number within the epoch
};

struct LoaderOptions {
  Split split = Split::kTrain;
  int batch_size = 8;
  bool shuffle = true;
  bool drop_last = false;  // drop a final partial batch
  uint64_t seed = 0;
  AugmentOptions augment;  // crop size, flips, rotations, colour jitter
  Shift shift;             // applied to every image as it is read (cross-domain tests)
  Normalization normalization;
  int workers = 2;
  int prefetch_batches = 4;  // batches decoded ahead of the consumer, at most
  int64_t max_pixels = kDefaultMaxPixels;
};

// Batches are identical for a given (dataset, options, epoch) whatever
// `workers` is: the order comes from (seed, epoch), each sample's augmentation
// from (seed, epoch, position in the epoch). Not thread-safe: one consumer.
class Loader {
 public:
  static absl::StatusOr<std::unique_ptr<Loader>> Create(std::shared_ptr<const Dataset> dataset,
                                                        const LoaderOptions &options);
  ~Loader();
  Loader(const Loader &) = delete;
  Loader &operator=(const Loader &) = delete;

  int num_batches() const { return num_batches_; }
  int num_samples() const { return static_cast<int>(indices_.size()); }

  // Starts (or restarts) epoch `epoch`; batches not yet taken from the previous
  // one are discarded.
  void StartEpoch(int epoch);
  // The next batch of the current epoch, nullopt after the last one, or the
  // error of a sample that could not be read. Blocks while the workers catch
  // up.
  absl::StatusOr<std::optional<Batch>> Next();

 private:
  Loader(std::shared_ptr<const Dataset> dataset, const LoaderOptions &options,
         std::vector<int> indices, int out_h, int out_w);
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Batch> BuildBatch(int epoch, int batch, const std::vector<int> &order) const;

  const std::shared_ptr<const Dataset> dataset_;
  const LoaderOptions options_;
  const std::vector<int> indices_;  // the split's samples
  const int out_h_, out_w_, num_batches_;

  absl::Mutex mu_;
  absl::CondVar cv_;
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
  int epoch_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const std::vector<int>> order_ ABSL_GUARDED_BY(mu_);
  int next_schedule_ ABSL_GUARDED_BY(mu_) = 0;
  int next_return_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int, absl::StatusOr<Batch>> ready_ ABSL_GUARDED_BY(mu_);

  // Last member: destroyed (and joined) first, while the state above is still
  // alive.
  std::unique_ptr<common::ThreadPool> pool_;
};

// Per-channel mean and standard deviation over every image of `split` (on the
// [0, 1] scale, population std, floored at 1e-6). Store it with models trained
// on the data set.
absl::StatusOr<Normalization> ComputeNormalization(const Dataset &dataset, Split split);

}  // namespace segserve::data
