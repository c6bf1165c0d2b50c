#include "server/data/augment.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/model_input/luma.h"

namespace segserve::data {

SampleTransform DrawTransform(const AugmentOptions &o, int height, int width, int out_h, int out_w,
                              Rng &rng) {
  SampleTransform t;
  const double u_y = rng.Uniform(), u_x = rng.Uniform();
  const int quarter = rng.UniformInt(0, 3);
  const bool fh = rng.Bernoulli(0.5), fv = rng.Bernoulli(0.5);
  const double ub = rng.Uniform(), uc = rng.Uniform(), us = rng.Uniform();
  if (o.rotate90) t.rot90 = out_h == out_w ? quarter : (quarter & 2);
  // An odd quarter turn of a square output reads a square window: same size
  // either way.
  const int span_y = height - out_h, span_x = width - out_w;
  if (o.random_crop) {
    t.y0 = std::min(span_y, static_cast<int>(u_y * (span_y + 1)));
    t.x0 = std::min(span_x, static_cast<int>(u_x * (span_x + 1)));
  } else {
    t.y0 = span_y / 2;
    t.x0 = span_x / 2;
  }
  if (o.flips) {
    t.flip_h = fh;
    t.flip_v = fv;
  }
  if (o.color) {
    t.brightness = static_cast<float>(1 - o.brightness_jitter + 2 * o.brightness_jitter * ub);
    t.contrast = static_cast<float>(1 - o.contrast_jitter + 2 * o.contrast_jitter * uc);
    t.saturation = static_cast<float>(1 - o.saturation_jitter + 2 * o.saturation_jitter * us);
  }
  return t;
}

absl::Status ApplyTransform(const Image &image, const Mask &mask, const SampleTransform &t,
                            const Normalization &norm, int out_h, int out_w, float *image_out,
                            uint8_t *mask_out) {
  if (image.height != mask.height || image.width != mask.width) {
    return absl::InvalidArgumentError("augment: image and mask sizes differ");
  }
  if (t.y0 < 0 || t.x0 < 0 || t.y0 + out_h > image.height || t.x0 + out_w > image.width) {
    return absl::InvalidArgumentError(absl::StrCat("augment: a ", out_w, "x", out_h,
                                                   " crop does not fit a ", image.width, "x",
                                                   image.height, " image"));
  }
  if ((t.rot90 & 1) && out_h != out_w) {
    return absl::InvalidArgumentError("augment: quarter turns need a square output");
  }
  const int c = image.channels;
  const size_t plane = static_cast<size_t>(out_h) * out_w;
  for (int y = 0; y < out_h; ++y) {
    for (int x = 0; x < out_w; ++x) {
      // Output = flip(rotate(window)); walk it backwards to the window
      // coordinate.
      const int fy = t.flip_v ? out_h - 1 - y : y;
      const int fx = t.flip_h ? out_w - 1 - x : x;
      int sy = fy, sx = fx;
      switch (t.rot90) {
        case 1:
          sy = fx;
          sx = out_w - 1 - fy;
          break;
        case 2:
          sy = out_h - 1 - fy;
          sx = out_w - 1 - fx;
          break;
        case 3:
          sy = out_h - 1 - fx;
          sx = fy;
          break;
        default:
          break;
      }
      const size_t src = static_cast<size_t>(t.y0 + sy) * image.width + (t.x0 + sx);
      const size_t dst = static_cast<size_t>(y) * out_w + x;
      mask_out[dst] = mask.ids[src];
      for (int k = 0; k < c; ++k) image_out[k * plane + dst] = image.GetNormalized(src * c + k);
    }
  }
  const int colour = c >= 3 ? 3 : 1;
  if (t.brightness != 1 || t.contrast != 1 || t.saturation != 1) {
    double sum = 0;
    for (size_t i = 0; i < plane; ++i) {
      for (int k = 0; k < colour; ++k) image_out[k * plane + i] *= t.brightness;
      sum += colour == 3 ? model_input::Luma<double>(image_out[i], image_out[plane + i],
                                                      image_out[2 * plane + i])
                         : image_out[i];
    }
    const float mean = static_cast<float>(sum / static_cast<double>(plane));
    for (size_t i = 0; i < plane; ++i) {
      float v[3];
      for (int k = 0; k < colour; ++k) v[k] = mean + (image_out[k * plane + i] - mean) * t.contrast;
      if (colour == 3) {
        const float g = model_input::Luma(v[0], v[1], v[2]);
        for (int k = 0; k < 3; ++k) v[k] = g + (v[k] - g) * t.saturation;
      }
      for (int k = 0; k < colour; ++k) image_out[k * plane + i] = std::clamp(v[k], 0.0f, 1.0f);
    }
  }
  for (int k = 0; k < c; ++k) {
    const float m = k < static_cast<int>(norm.mean.size()) ? norm.mean[k] : 0.0f;
    const float s = k < static_cast<int>(norm.std.size()) && norm.std[k] > 0 ? norm.std[k] : 1.0f;
    const float inv = 1.0f / s;
    float *p = image_out + k * plane;
    for (size_t i = 0; i < plane; ++i) p[i] = (p[i] - m) * inv;
  }
  return absl::OkStatus();
}

}  // namespace segserve::data
