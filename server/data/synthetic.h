// File: server/data/synthetic.h — the synthetic plasmodium (malaria) thin-smear
// data set: deterministic from a seed, with graded domain shifts baked in on
// request.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/data/dataset.h"
#include "server/data/image.h"
#include "server/data/shift.h"

namespace segserve::data {

// Mask class ids of the synthetic set. White blood cells, platelets and debris
// are background: they are the distractors a model must learn to ignore.
inline constexpr uint8_t kSynthBackground = 0;
inline constexpr uint8_t kSynthRedBloodCell = 1;  // uninfected parts of red cells
inline constexpr uint8_t kSynthParasite = 2;      // ring forms, trophozoites, chromatin

// {0 background, 1 red_blood_cell, 2 parasite}.
std::vector<ClassInfo> SyntheticClasses();

// Class fractions every generated 256x256 image stays within (tested; see
// docs/datasets.md): background [0.45, 0.85], red blood cell [0.15, 0.50],
// parasite [0.0002, 0.03] (every image holds at least one parasite).
struct SyntheticOptions {
  int size = 256;             // width = height, pixels (16..4096)
  double cell_radius = 14.0;  // mean red-cell radius, pixels (the magnification)
};

struct SyntheticSample {
  Image image;  // 8-bit RGB
  Mask mask;
};

// Image `index` of the set generated with `seed`: each image has its own seed
// derived from both, so images can be generated in any order or in parallel.
absl::StatusOr<SyntheticSample> GenerateSyntheticSample(uint64_t seed, int index,
                                                        const SyntheticOptions &options = {});

struct SyntheticDatasetOptions {
  int count = 500;
  uint64_t seed = 1;
  std::string name = "plasmodium-synth";
  SyntheticOptions sample;
  Shift shift;  // baked into every image; recorded as the data set's domain label
  SplitRatios ratios{0.7, 0.15, 0.15, 0};  // resolved into explicit lists (seed = seed)
  int threads = 2;
  // Called after each image is written with the number written so far (from the
  // generator's threads, possibly concurrently); for progress reports.
  std::function<void(int written)> on_image_written;
};

// Writes a native data set (see dataset.h) with ids synth_00000.. into
// `out_dir`. Byte-identical output for the same options. AlreadyExists if
// out_dir holds a data set.
absl::Status GenerateSyntheticDataset(const std::string &out_dir,
                                      const SyntheticDatasetOptions &options);

// A copy of `image` with mask classes tinted (red cells green, parasites
// magenta), for looking at generated samples and predictions.
Image RenderOverlay(const Image &image, const Mask &mask);

}  // namespace segserve::data
