#include "server/susceptibility/analyze_datasets.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/data/dataset.h"
#include "server/data/loader.h"
#include "server/data/shift.h"
#include "server/model/servable_model.h"
#include "server/model_input/channel_means.h"
#include "server/model_input/model_input.h"

namespace segserve::susceptibility {
namespace {

// A data set's name as clients give it: its folder under datasets/ (the manifest's "name"
// may differ, e.g. nnU-Net's "Dataset042_...").
std::string FolderName(const std::string& dir) {
  return std::filesystem::path(dir).filename().string();
}

// A batch of images on the [0, 1] scale, planar: n x c x h x w.
struct UnitBatch {
  int n = 0, c = 0, h = 0, w = 0;
  std::vector<float> data;
};

// Yields the batches of one ImageSet.
class BatchSource {
 public:
  static absl::StatusOr<std::unique_ptr<BatchSource>> Create(const ImageSet& set,
                                                             const std::string& field,
                                                             const AnalysisOptions& options) {
    auto src = std::unique_ptr<BatchSource>(new BatchSource());
    src->set_ = &set;
    src->batch_size_ = options.batch_size;
    ASSIGN_OR_RETURN(src->shift_, data::ParseShift(set.shift, field + ".shift"));
    int64_t available = 0;
    if (!set.dataset_dir.empty()) {
      ASSIGN_OR_RETURN(data::Split split, data::ParseSplit(set.split.empty() ? "test" : set.split));
      data::OpenOptions open;
      open.verify_contents = false;
      absl::StatusOr<data::Dataset> ds = data::OpenDataset(set.dataset_dir, open);
      if (!ds.ok()) {
        return absl::Status(ds.status().code(),
                            absl::StrCat(field, ".dataset: ", ds.status().message()));
      }
      auto dataset = std::make_shared<const data::Dataset>(std::move(*ds));
      RETURN_IF_ERROR(
          data::CheckShiftChannels(src->shift_, dataset->channels, field + ".shift",
                                   absl::StrCat("data set '", FolderName(set.dataset_dir), "'")));
      available = static_cast<int64_t>(dataset->split(split).size());
      if (available == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": split ", set.split, " of ", dataset->name, " is empty"));
      }
      data::LoaderOptions lo;
      lo.split = split;
      lo.batch_size = options.batch_size;
      lo.shuffle = false;
      lo.augment.random_crop = false;
      lo.augment.flips = false;
      lo.augment.rotate90 = false;
      lo.augment.color = false;
      lo.shift = src->shift_;
      lo.workers = std::max(1, options.loader_workers);
      // Normalisation stays empty: batches come out on the [0, 1] scale and each model
      // applies its own mean/std.
      absl::StatusOr<std::unique_ptr<data::Loader>> loader = data::Loader::Create(dataset, lo);
      if (!loader.ok()) {
        return absl::Status(loader.status().code(),
                            absl::StrCat(field, ": ", loader.status().message()));
      }
      src->loader_ = std::move(*loader);
    } else {
      available = static_cast<int64_t>(set.images.size());
      for (size_t i = 0; i < set.images.size(); ++i) {
        absl::Status s = data::ValidateImage(set.images[i]);
        if (!s.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(field, ".images[", i, "]: ", s.message()));
        }
        RETURN_IF_ERROR(data::CheckShiftChannels(src->shift_, set.images[i].channels,
                                                 field + ".shift",
                                                 absl::StrCat(field, ".images[", i, "]")));
      }
    }
    int64_t total = available;
    if (set.limit > 0) total = std::min<int64_t>(total, set.limit);
    if (options.max_images_per_set > 0) total = std::min(total, options.max_images_per_set);
    if (total <= 0) return absl::InvalidArgumentError(absl::StrCat(field, ": no images"));
    src->total_ = total;
    return src;
  }

  int64_t total() const { return total_; }
  const data::Shift& shift() const { return shift_; }

  absl::StatusOr<std::optional<UnitBatch>> Next() {
    if (done_ >= total_) return std::optional<UnitBatch>();
    UnitBatch b;
    if (loader_) {
      ASSIGN_OR_RETURN(std::optional<data::Batch> batch, loader_->Next());
      if (!batch) return std::optional<UnitBatch>();
      b.n = static_cast<int>(std::min<int64_t>(batch->n, total_ - done_));
      b.c = batch->c;
      b.h = batch->h;
      b.w = batch->w;
      batch->images.resize(static_cast<size_t>(b.n) * b.c * b.h * b.w);
      b.data = std::move(batch->images);
    } else {
      const auto& images = set_->images;
      const data::Image& first = images[done_];
      b.c = first.channels;
      b.h = first.height;
      b.w = first.width;
      const size_t plane = first.num_pixels();
      while (done_ + b.n < total_ && b.n < batch_size_) {
        data::Image image = images[done_ + b.n];
        if (image.channels != b.c || image.height != b.h || image.width != b.w) break;
        RETURN_IF_ERROR(data::ApplyShift(shift_, &image));
        b.data.resize(static_cast<size_t>(b.n + 1) * b.c * plane);
        float* out = b.data.data() + static_cast<size_t>(b.n) * b.c * plane;
        for (size_t p = 0; p < plane; ++p) {
          for (int c = 0; c < b.c; ++c) {
            out[static_cast<size_t>(c) * plane + p] = image.GetNormalized(p * b.c + c);
          }
        }
        ++b.n;
      }
    }
    done_ += b.n;
    return std::optional<UnitBatch>(std::move(b));
  }

 private:
  BatchSource() = default;
  const ImageSet* set_ = nullptr;
  int batch_size_ = 8;
  data::Shift shift_;
  std::unique_ptr<data::Loader> loader_;
  int64_t total_ = 0;
  int64_t done_ = 0;
};

}  // namespace

absl::StatusOr<std::vector<std::vector<SusceptibilityReport>>> AnalyzeTargets(
    const std::vector<std::shared_ptr<const registry::LoadedModel>>& models, const ImageSet& source,
    const std::vector<ImageSet>& targets, const AnalysisOptions& options,
    const AnalysisProgressFn& progress, const std::function<bool()>& cancelled) {
  if (models.empty()) return absl::InvalidArgumentError("models: none given");
  if (targets.empty()) return absl::InvalidArgumentError("targets: none given");
  for (size_t i = 0; i < models.size(); ++i) {
    if (!models[i] || !models[i]->servable) {
      return absl::InvalidArgumentError(absl::StrCat("models[", i, "]: not loaded"));
    }
  }
  if (options.batch_size < 1 || options.batch_size > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size: must be 1..256, got ", options.batch_size));
  }
  // analyzers[t][m]: target t against the source, as seen by model m.
  std::vector<std::vector<std::unique_ptr<SusceptibilityAnalyzer>>> analyzers(targets.size());
  for (auto& per_target : analyzers) {
    for (size_t m = 0; m < models.size(); ++m) {
      ASSIGN_OR_RETURN(auto a, SusceptibilityAnalyzer::Create({options.bins}));
      per_target.push_back(std::move(a));
    }
  }
  // sets[0] is the source, sets[1 + t] target t; one target keeps the field name "target".
  std::vector<std::unique_ptr<BatchSource>> sets;
  std::vector<std::string> fields = {"source"};
  for (size_t t = 0; t < targets.size(); ++t) {
    fields.push_back(targets.size() == 1 ? std::string("target")
                                         : absl::StrCat("targets[", t, "]"));
  }
  ASSIGN_OR_RETURN(auto src, BatchSource::Create(source, fields[0], options));
  sets.push_back(std::move(src));
  for (size_t t = 0; t < targets.size(); ++t) {
    ASSIGN_OR_RETURN(auto tgt, BatchSource::Create(targets[t], fields[t + 1], options));
    sets.push_back(std::move(tgt));
  }
  // A 1-channel model sees colour images as their luminance, which saturation leaves alone.
  for (const auto& model : models) {
    const std::string subject =
        absl::StrCat("model '", model->stored.name, ":", model->stored.version, "'");
    const int channels = model->servable->config().in_channels;
    for (size_t s = 0; s < sets.size(); ++s) {
      RETURN_IF_ERROR(
          data::CheckShiftChannels(sets[s]->shift(), channels, fields[s] + ".shift", subject));
    }
  }
  int64_t total = 0;
  for (const auto& set : sets) total += set->total();
  int64_t done = 0;

  // The source pass runs once; its tap means go to every target's analyzers.
  for (size_t s = 0; s < sets.size(); ++s) {
    BatchSource& set = *sets[s];
    const std::string& field = fields[s];
    while (true) {
      if (cancelled && cancelled()) return absl::CancelledError("analysis cancelled");
      ASSIGN_OR_RETURN(std::optional<UnitBatch> batch, set.Next());
      if (!batch || batch->n == 0) break;
      for (size_t m = 0; m < models.size(); ++m) {
        model::ServableModel& servable = *models[m]->servable;
        ASSIGN_OR_RETURN(
            std::vector<float> input,
            model_input::UnitBatchToModelInput(batch->data.data(), batch->n, batch->c, batch->h,
                                               batch->w, servable.config(), field));
        const int channels = servable.config().in_channels;
        absl::StatusOr<TapMeans> means;
        if (options.forward) {
          means =
              options.forward(models[m], batch->n, channels, batch->h, batch->w, std::move(input));
        } else {
          try {
            torch::InferenceMode inference_mode;
            const torch::Tensor x = torch::from_blob(
                input.data(), {batch->n, channels, batch->h, batch->w}, torch::kFloat);
            ASSIGN_OR_RETURN(model::UnetOutput out, servable.ForwardWithTaps(x));
            means = model_input::ChannelMeans(out);
          } catch (const c10::Error& e) {
            return absl::InternalError(absl::StrCat("analysis: ", e.what_without_backtrace()));
          }
        }
        RETURN_IF_ERROR(means.status());
        if (s == 0) {
          for (auto& per_target : analyzers) RETURN_IF_ERROR(per_target[m]->AddSource(*means));
        } else {
          RETURN_IF_ERROR(analyzers[s - 1][m]->AddTarget(*means));
        }
      }
      done += batch->n;
      if (progress) progress(done, total);
    }
  }

  std::vector<std::vector<SusceptibilityReport>> reports(targets.size());
  for (size_t t = 0; t < targets.size(); ++t) {
    for (size_t m = 0; m < models.size(); ++m) {
      ASSIGN_OR_RETURN(SusceptibilityReport r, analyzers[t][m]->Finish());
      r.model_name = models[m]->stored.name;
      r.model_version = models[m]->stored.version;
      reports[t].push_back(std::move(r));
    }
  }
  return reports;
}

absl::StatusOr<std::vector<SusceptibilityReport>> AnalyzeDatasets(
    const std::vector<std::shared_ptr<const registry::LoadedModel>>& models, const ImageSet& source,
    const ImageSet& target, const AnalysisOptions& options, const AnalysisProgressFn& progress,
    const std::function<bool()>& cancelled) {
  ASSIGN_OR_RETURN(auto reports,
                   AnalyzeTargets(models, source, {target}, options, progress, cancelled));
  return std::move(reports.at(0));
}

}  // namespace segserve::susceptibility
