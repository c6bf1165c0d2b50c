// File: server/susceptibility/analyze_datasets.h — the analysis driver: streams a source and
// a target image set (server-side data set with split and optional shift, or inline images)
// through one or more served models with their feature taps, and returns one
// SusceptibilityReport per model (same images for every model). Torch-free header.
//
// Threading: the forward passes run through AnalysisOptions::forward; the server routes
// them through the inference BatchScheduler at background priority (one executor owns the
// device; Segment traffic goes first). Without `forward` (tests, benchmarks, tools) they
// run on the calling thread, which must then be the only user of the models.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/data/image.h"
#include "server/registry/registry.h"
#include "server/susceptibility/analyzer.h"

namespace segserve::susceptibility {

struct ImageSet {
  // A data set folder (absolute; resolve client names under <data_dir>/datasets first). Its
  // images must share one size (the loader batches them). Empty: use `images`.
  std::string dataset_dir;
  std::string split = "test";  // train, val, test
  std::string shift;           // "brightness:3" etc. (data::ParseShift), applied on the fly
  int limit = 0;               // the first `limit` images of the split; 0 = all
  // Inline images (8/16-bit or float, gray/RGB/RGBA; converted to each model's channels as
  // the inference path does). Consecutive images of one size are batched together.
  std::vector<data::Image> images;
};

// Runs `n` normalised images (n x c x h x w floats, the model's input) through `model` and
// returns their tap channel means. Blocks the calling thread until they are computed.
using TapMeansFn = std::function<absl::StatusOr<TapMeans>(
    const std::shared_ptr<const registry::LoadedModel>& model, int n, int c, int h, int w,
    std::vector<float> input)>;

struct AnalysisOptions {
  int bins = 0;        // AnalyzerOptions::bins
  int batch_size = 8;  // 1..256
  // Caps every set's image count (0 = no cap); a set's own `limit` applies too.
  int64_t max_images_per_set = 0;
  int loader_workers = 2;  // decode threads per data-set set
  // Where the forward passes run; empty: ServableModel::ForwardWithTaps on this thread.
  TapMeansFn forward;
};

// Called after every batch with the images done and the total (source + target; every
// model sees each image).
using AnalysisProgressFn = std::function<void(int64_t done, int64_t total)>;

// InvalidArgument for bad options, an unknown split or shift (naming source.* / target.*),
// an empty set, or images the models cannot take; NotFound for a missing data set;
// FailedPrecondition when models disagree on the input channels a data set provides;
// Cancelled when `cancelled` turns true (checked between batches).
absl::StatusOr<std::vector<SusceptibilityReport>> AnalyzeDatasets(
    const std::vector<std::shared_ptr<const registry::LoadedModel>>& models,
    const ImageSet& source, const ImageSet& target, const AnalysisOptions& options,
    const AnalysisProgressFn& progress = nullptr,
    const std::function<bool()>& cancelled = nullptr);

// AnalyzeDatasets for several targets against one source: the source set is read and run
// through the models once, and its tap means go to every target's analysis, so T targets
// cost 1 + T passes instead of 2T. Returns reports[t][m] (target t, model m), each the same
// as AnalyzeDatasets(models, source, targets[t]) would return. With more than one target,
// errors name "targets[t]" instead of "target".
absl::StatusOr<std::vector<std::vector<SusceptibilityReport>>> AnalyzeTargets(
    const std::vector<std::shared_ptr<const registry::LoadedModel>>& models, const ImageSet& source,
    const std::vector<ImageSet>& targets, const AnalysisOptions& options,
    const AnalysisProgressFn& progress = nullptr, const std::function<bool()>& cancelled = nullptr);

}  // namespace segserve::susceptibility
