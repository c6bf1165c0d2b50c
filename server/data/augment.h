// File: server/data/augment.h — per-sample augmentation (random crop, flips,
// 90-degree rotations, colour jitter) and normalisation into a float CHW
// buffer. Geometry is applied to image and mask together, so they stay aligned.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "server/data/image.h"
#include "server/data/random.h"

namespace segserve::data {

// Per-channel statistics of samples on the [0, 1] scale (8-bit /255, 16-bit
// /65535). Empty vectors mean mean 0, std 1 (no normalisation).
struct Normalization {
  std::vector<float> mean;
  std::vector<float> std;
};

struct AugmentOptions {
  // Output size; 0 keeps the full image (then all images of a split must share
  // a size).
  int crop_height = 0;
  int crop_width = 0;
  bool random_crop = true;  // false: centre crop
  bool flips = true;        // horizontal and vertical, each with probability 1/2
  bool rotate90 = true;     // 0/90/180/270 degrees; 0/180 only for non-square outputs
  bool color = false;       // brightness, contrast, saturation jitter
  // Colour jitter: factors drawn uniformly from [1 - j, 1 + j].
  float brightness_jitter = 0.15f;
  float contrast_jitter = 0.15f;
  float saturation_jitter = 0.15f;
};

// The geometry drawn for one sample.
struct SampleTransform {
  int y0 = 0, x0 = 0;  // top-left of the source window
  int rot90 = 0;       // counter-clockwise quarter turns, 0..3
  bool flip_h = false, flip_v = false;
  float brightness = 1, contrast = 1, saturation = 1;
};

// Draws the transform for an image of `height` x `width` to an output of out_h
// x out_w (which the image must cover: callers check this). Always consumes the
// same number of draws from `rng`, whatever the options, so the streams of
// later samples do not shift.
SampleTransform DrawTransform(const AugmentOptions &options, int height, int width, int out_h,
                              int out_w, Rng &rng);

// Writes the transformed, normalised image as C x out_h x out_w floats to
// `image_out` and the transformed mask as out_h x out_w ids to `mask_out`.
absl::Status ApplyTransform(const Image &image, const Mask &mask, const SampleTransform &t,
                            const Normalization &norm, int out_h, int out_w, float *image_out,
                            uint8_t *mask_out);

}  // namespace segserve::data
