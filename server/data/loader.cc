#include "server/data/loader.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/data/absl_compat.h"
#include "server/data/random.h"

namespace segserve::data {

absl::StatusOr<std::unique_ptr<Loader>> Loader::Create(std::shared_ptr<const Dataset> dataset,
                                                       const LoaderOptions &options) {
  if (dataset == nullptr) return absl::InvalidArgumentError("loader: no dataset");
  if (options.batch_size < 1 || options.workers < 1 || options.prefetch_batches < 1) {
    return absl::InvalidArgumentError(
        "loader: batch_size, workers and prefetch_batches must be >= 1");
  }
  if (options.augment.crop_height < 0 || options.augment.crop_width < 0) {
    return absl::InvalidArgumentError("loader: crop size must be >= 0");
  }
  std::vector<int> indices = dataset->split(options.split);
  if (indices.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("loader: split ",
                                                      Sv(SplitName(options.split)), " of dataset ",
                                                      dataset->name, " is empty"));
  }
  int out_h = options.augment.crop_height, out_w = options.augment.crop_width;
  const bool crop = out_h > 0 || out_w > 0;
  if (crop && (out_h == 0 || out_w == 0)) {
    return absl::InvalidArgumentError("loader: set both crop_height and crop_width, or neither");
  }
  for (int i : indices) {
    const DatasetSample &s = dataset->samples[i];
    if (!crop) {
      out_h = out_h == 0 ? s.height : out_h;
      out_w = out_w == 0 ? s.width : out_w;
      if (s.height != out_h || s.width != out_w) {
        return absl::InvalidArgumentError(absl::StrCat(
            "loader: images of split ", Sv(SplitName(options.split)), " differ in size (", s.id,
            " is ", s.width, "x", s.height, "); set a crop size to batch them"));
      }
    } else if (s.height < out_h || s.width < out_w) {
      return absl::InvalidArgumentError(absl::StrCat("loader: crop ", out_w, "x", out_h,
                                                     " is larger than sample ", s.id, " (", s.width,
                                                     "x", s.height, ")"));
    }
  }
  std::unique_ptr<Loader> loader(
      new Loader(std::move(dataset), options, std::move(indices), out_h, out_w));
  loader->StartEpoch(0);
  return loader;
}

Loader::Loader(std::shared_ptr<const Dataset> dataset, const LoaderOptions &options,
               std::vector<int> indices, int out_h, int out_w)
    : dataset_(std::move(dataset)),
      options_(options),
      indices_(std::move(indices)),
      out_h_(out_h),
      out_w_(out_w),
      num_batches_(options.drop_last
                       ? static_cast<int>(indices_.size()) / options.batch_size
                       : (static_cast<int>(indices_.size()) + options.batch_size - 1) /
                             options.batch_size),
      pool_(std::make_unique<common::ThreadPool>(options.workers,
                                                 static_cast<size_t>(options.prefetch_batches))) {}

Loader::~Loader() {
  {
    absl::MutexLock lock(&mu_);
    ++generation_;  // queued tasks see a stale generation and return at once
  }
  pool_.reset();
}

void Loader::StartEpoch(int epoch) {
  absl::MutexLock lock(&mu_);
  ++generation_;
  while (in_flight_ != 0) cv_.Wait(&mu_);
  auto order = std::make_shared<std::vector<int>>(indices_);
  if (options_.shuffle) {
    Rng rng(MixSeed(options_.seed, static_cast<uint64_t>(epoch), 0x5f0ff1e));
    for (size_t i = order->size(); i > 1; --i) {
      std::swap((*order)[i - 1], (*order)[rng.UniformInt(0, static_cast<int>(i - 1))]);
    }
  }
  epoch_ = epoch;
  order_ = std::move(order);
  ready_.clear();
  next_schedule_ = 0;
  next_return_ = 0;
  ScheduleLocked();
}

void Loader::ScheduleLocked() {
  while (next_schedule_ < num_batches_ &&
         next_schedule_ < next_return_ + options_.prefetch_batches) {
    const int batch = next_schedule_;
    const int generation = generation_;
    const int epoch = epoch_;
    std::shared_ptr<const std::vector<int>> order = order_;
    std::function<void()> task = [this, batch, generation, epoch, order] {
      {
        absl::MutexLock lock(&mu_);
        if (generation != generation_) {
          --in_flight_;
          cv_.SignalAll();
          return;
        }
      }
      absl::StatusOr<Batch> result = BuildBatch(epoch, batch, *order);
      absl::MutexLock lock(&mu_);
      if (generation == generation_) ready_.emplace(batch, std::move(result));
      --in_flight_;
      cv_.SignalAll();
    };
    ++in_flight_;
    if (!pool_->TrySchedule(std::move(task))) {
      // Cannot happen while in_flight_ <= prefetch_batches = queue capacity;
      // keep the accounting right regardless and retry on the next call.
      --in_flight_;
      return;
    }
    ++next_schedule_;
  }
}

absl::StatusOr<std::optional<Batch>> Loader::Next() {
  absl::MutexLock lock(&mu_);
  if (next_return_ >= num_batches_) return std::optional<Batch>();
  ScheduleLocked();
  const int want = next_return_;
  if (want >= next_schedule_) {
    // The pool refused the task (it never should); build it here rather than
    // hang.
    const int epoch = epoch_;
    std::shared_ptr<const std::vector<int>> order = order_;
    mu_.Unlock();
    absl::StatusOr<Batch> batch = BuildBatch(epoch, want, *order);
    mu_.Lock();
    ready_.emplace(want, std::move(batch));
    ++next_schedule_;
  }
  while (ready_.count(want) == 0) cv_.Wait(&mu_);
  absl::StatusOr<Batch> batch = std::move(ready_.at(want));
  ready_.erase(want);
  ++next_return_;
  ScheduleLocked();
  if (!batch.ok()) return batch.status();
  return std::optional<Batch>(std::move(batch).value());
}

absl::StatusOr<Batch> Loader::BuildBatch(int epoch, int batch_index,
                                         const std::vector<int> &order) const {
  const int begin = batch_index * options_.batch_size;
  const int end = std::min(static_cast<int>(order.size()), begin + options_.batch_size);
  Batch batch;
  batch.n = end - begin;
  batch.c = dataset_->channels;
  batch.h = out_h_;
  batch.w = out_w_;
  batch.epoch = epoch;
  batch.index = batch_index;
  const size_t image_size = static_cast<size_t>(batch.c) * out_h_ * out_w_;
  const size_t mask_size = static_cast<size_t>(out_h_) * out_w_;
  batch.images.resize(image_size * batch.n);
  batch.masks.resize(mask_size * batch.n);
  for (int pos = begin; pos < end; ++pos) {
    const int k = pos - begin;
    const DatasetSample &s = dataset_->samples[order[pos]];
    ASSIGN_OR_RETURN(LoadedSample sample,
                     LoadSample(*dataset_, order[pos], options_.shift, options_.max_pixels));
    if (sample.image.channels != batch.c) {
      return absl::InvalidArgumentError(absl::StrCat(
          "loader: sample ", s.id, " has ", sample.image.channels, " channels, not ", batch.c));
    }
    Rng rng(MixSeed(options_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(pos)));
    const SampleTransform t = DrawTransform(options_.augment, sample.image.height,
                                            sample.image.width, out_h_, out_w_, rng);
    RETURN_IF_ERROR(ApplyTransform(sample.image, sample.mask, t, options_.normalization, out_h_,
                                   out_w_, batch.images.data() + k * image_size,
                                   batch.masks.data() + k * mask_size));
    batch.ids.push_back(s.id);
  }
  return batch;
}

absl::StatusOr<Normalization> ComputeNormalization(const Dataset &dataset, Split split) {
  const std::vector<int> &indices = dataset.split(split);
  if (indices.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("normalization: split ", Sv(SplitName(split)), " is empty"));
  }
  const int c = dataset.channels;
  std::vector<double> sum(c, 0.0), sum_sq(c, 0.0);
  double count = 0;
  for (int i : indices) {
    ASSIGN_OR_RETURN(const LoadedSample s, LoadSample(dataset, i));
    if (s.image.channels != c) {
      return absl::InvalidArgumentError(absl::StrCat("normalization: sample ",
                                                     dataset.samples[i].id, " has ",
                                                     s.image.channels, " channels, not ", c));
    }
    for (size_t p = 0; p < s.image.num_pixels(); ++p) {
      for (int k = 0; k < c; ++k) {
        const double v = s.image.GetNormalized(p * c + k);
        sum[k] += v;
        sum_sq[k] += v * v;
      }
    }
    count += static_cast<double>(s.image.num_pixels());
  }
  Normalization norm;
  for (int k = 0; k < c; ++k) {
    const double mean = sum[k] / count;
    const double var = std::max(0.0, sum_sq[k] / count - mean * mean);
    norm.mean.push_back(static_cast<float>(mean));
    norm.std.push_back(static_cast<float>(std::max(1e-6, std::sqrt(var))));
  }
  return norm;
}

}  // namespace segserve::data
