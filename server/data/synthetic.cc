#include "server/data/synthetic.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/status_macros.h"
#include "server/data/random.h"

namespace segserve::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

struct Rgb {
  double r, g, b;
  Rgb operator*(double s) const { return {r * s, g * s, b * s}; }
};

// The smear is rendered as optical absorbance (Beer-Lambert): overlapping cells
// darken each other the way stained layers do, and the final colour is
// background * exp(-A).
class Canvas {
 public:
  explicit Canvas(int size)
      : size_(size),
        a_(static_cast<size_t>(size) * size * 3, 0.0f),
        mask_(Mask::Create(size, size)) {}

  int size() const { return size_; }
  void Absorb(int x, int y, const Rgb &a, double amount) {
    float *p = &a_[(static_cast<size_t>(y) * size_ + x) * 3];
    p[0] += static_cast<float>(a.r * amount);
    p[1] += static_cast<float>(a.g * amount);
    p[2] += static_cast<float>(a.b * amount);
  }
  uint8_t &label(int x, int y) { return mask_.ids[static_cast<size_t>(y) * size_ + x]; }
  const std::vector<float> &absorbance() const { return a_; }
  Mask &mask() { return mask_; }

  // Calls fn(x, y) for every pixel of the box around (cx, cy) with half-size
  // `r`.
  template <typename Fn>
  void ForBox(double cx, double cy, double r, Fn fn) {
    const int x0 = std::max(0, static_cast<int>(std::floor(cx - r)));
    const int x1 = std::min(size_ - 1, static_cast<int>(std::ceil(cx + r)));
    const int y0 = std::max(0, static_cast<int>(std::floor(cy - r)));
    const int y1 = std::min(size_ - 1, static_cast<int>(std::ceil(cy + r)));
    for (int y = y0; y <= y1; ++y) {
      for (int x = x0; x <= x1; ++x) fn(x, y);
    }
  }

 private:
  int size_;
  std::vector<float> a_;
  Mask mask_;
};

// A wobbly ellipse: radius r * (1 + e2 cos(2t + p2) + e3 cos(3t + p3)),
// squashed by `aspect` along its rotated minor axis.
struct Blob {
  double cx, cy, r, aspect, angle, e2, p2, e3, p3;
  double ca = 1.0, sa = 0.0;  // cos and sin of angle, cached

  static Blob Random(Rng &rng, double cx, double cy, double r, double wobble, double squash) {
    Blob b{cx,
           cy,
           r,
           1.0 - rng.Uniform(0.0, squash),
           rng.Uniform(0.0, kPi),
           rng.Uniform(0.0, wobble),
           rng.Uniform(0.0, 2 * kPi),
           rng.Uniform(0.0, wobble * 0.6),
           rng.Uniform(0.0, 2 * kPi)};
    b.ca = std::cos(b.angle);
    b.sa = std::sin(b.angle);
    return b;
  }
  // Signed distance in pixels inside the edge (positive inside) and the
  // relative radius.
  void Measure(int x, int y, double *inside, double *rel) const {
    const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
    const double u = dx * ca + dy * sa;
    const double v = (-dx * sa + dy * ca) / aspect;
    const double dist = std::sqrt(u * u + v * v);
    const double t = std::atan2(v, u);
    const double edge = r * (1.0 + e2 * std::cos(2 * t + p2) + e3 * std::cos(3 * t + p3));
    *inside = edge - dist;
    *rel = dist / edge;
  }
  // Anti-aliased coverage of pixel (x, y), in [0, 1].
  double Coverage(int x, int y) const {
    double inside, rel;
    Measure(x, y, &inside, &rel);
    return std::clamp(inside + 0.5, 0.0, 1.0);
  }
};

struct Stain {
  Rgb background, rbc, parasite, chromatin, pigment, nucleus, cytoplasm, platelet;
};

Stain RandomStain(Rng &rng) {
  const auto jitter = [&](Rgb c, double s) {
    return Rgb{c.r * (1 + rng.Normal(0, s)), c.g * (1 + rng.Normal(0, s)),
               c.b * (1 + rng.Normal(0, s))};
  };
  const double strength = rng.Uniform(0.85, 1.15);
  Stain st;
  st.background = jitter({0.945, 0.915, 0.895}, 0.012);
  st.rbc = jitter({0.10, 0.50, 0.36}, 0.08) * strength;
  st.parasite = jitter({0.85, 1.35, 0.40}, 0.08) * strength;
  st.chromatin = jitter({1.55, 2.30, 0.85}, 0.08) * strength;
  st.pigment = {1.0, 1.15, 1.45};
  st.nucleus = jitter({1.05, 1.55, 0.45}, 0.08) * strength;
  st.cytoplasm = jitter({0.16, 0.24, 0.10}, 0.1);
  st.platelet = jitter({0.45, 0.75, 0.25}, 0.1);
  return st;
}

void DrawWhiteCell(Rng &rng, const Stain &st, const Blob &cell, Canvas *canvas) {
  const int lobes = rng.UniformInt(2, 4);
  std::vector<Blob> nucleus;
  double angle = rng.Uniform(0, 2 * kPi);
  double px = cell.cx + rng.Normal(0, cell.r * 0.1), py = cell.cy + rng.Normal(0, cell.r * 0.1);
  for (int i = 0; i < lobes; ++i) {
    nucleus.push_back(Blob::Random(rng, px, py, cell.r * rng.Uniform(0.26, 0.36), 0.12, 0.3));
    angle += rng.Uniform(-1.2, 1.2);
    px += std::cos(angle) * cell.r * 0.38;
    py += std::sin(angle) * cell.r * 0.38;
  }
  canvas->ForBox(cell.cx, cell.cy, cell.r * 1.3, [&](int x, int y) {
    const double cov = cell.Coverage(x, y);
    if (cov <= 0) return;
    canvas->Absorb(x, y, st.cytoplasm, cov);
    double n = 0;
    for (const Blob &b : nucleus) n = std::max(n, b.Coverage(x, y));
    const double mottle = 0.85 + 0.15 * std::sin(x * 1.3 + y * 0.7) * std::cos(y * 1.1 - x * 0.4);
    canvas->Absorb(x, y, st.nucleus, n * cov * mottle);
    if (cov >= 0.5) canvas->label(x, y) = kSynthBackground;
  });
}

void DrawRedCell(const Stain &st, const Blob &cell, double pallor, double density, Canvas *canvas) {
  canvas->ForBox(cell.cx, cell.cy, cell.r * 1.35, [&](int x, int y) {
    double inside, rel;
    cell.Measure(x, y, &inside, &rel);
    const double cov = std::clamp(inside + 0.5, 0.0, 1.0);
    if (cov <= 0) return;
    // Biconcave disc: thin, pale centre; thicker rim.
    const double thickness = 1.0 - pallor * std::exp(-(rel / 0.45) * (rel / 0.45)) +
                             0.12 * std::exp(-((rel - 0.86) / 0.1) * ((rel - 0.86) / 0.1));
    canvas->Absorb(x, y, st.rbc, cov * thickness * density);
    if (cov >= 0.5 && canvas->label(x, y) == kSynthBackground) {
      canvas->label(x, y) = kSynthRedBloodCell;
    }
  });
}

void DrawRing(Rng &rng, const Stain &st, const Blob &host, Canvas *canvas) {
  const double off = rng.Uniform(0, 0.45) * host.r, dir = rng.Uniform(0, 2 * kPi);
  const double cx = host.cx + std::cos(dir) * off, cy = host.cy + std::sin(dir) * off;
  const double rr = host.r * rng.Uniform(0.2, 0.32);
  const double width = rng.Uniform(0.8, 1.25);
  const double start = rng.Uniform(0, 2 * kPi), span = rng.Uniform(1.3 * kPi, 2 * kPi);
  const double strength = rng.Uniform(0.7, 1.0);
  std::vector<Blob> dots;
  const int n_dots = rng.Bernoulli(0.3) ? 2 : 1;
  for (int i = 0; i < n_dots; ++i) {
    const double a = start + (i == 0 ? 0.0 : span);
    dots.push_back(Blob::Random(rng, cx + std::cos(a) * rr, cy + std::sin(a) * rr,
                                rng.Uniform(1.3, 2.0), 0.1, 0.3));
  }
  canvas->ForBox(cx, cy, rr + 4, [&](int x, int y) {
    const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
    const double dist = std::sqrt(dx * dx + dy * dy);
    double a = std::atan2(dy, dx) - start;
    a -= 2 * kPi * std::floor(a / (2 * kPi));
    // Fades over 0.3 rad at both ends of the arc.
    const double arc = std::clamp(std::min(a, span - a) / 0.3 + 0.5, 0.0, 1.0);
    const double ring = std::exp(-((dist - rr) / width) * ((dist - rr) / width)) * arc;
    double dot = 0;
    for (const Blob &d : dots) dot = std::max(dot, d.Coverage(x, y));
    canvas->Absorb(x, y, st.parasite, ring * strength);
    canvas->Absorb(x, y, st.chromatin, dot);
    if (ring * strength > 0.4 || dot >= 0.5) canvas->label(x, y) = kSynthParasite;
  });
}

void DrawTrophozoite(Rng &rng, const Stain &st, const Blob &host, Canvas *canvas) {
  const double off = rng.Uniform(0, 0.3) * host.r, dir = rng.Uniform(0, 2 * kPi);
  const Blob body = Blob::Random(rng, host.cx + std::cos(dir) * off, host.cy + std::sin(dir) * off,
                                 host.r * rng.Uniform(0.28, 0.45), 0.18, 0.35);
  const double fx = rng.Uniform(0.6, 1.4), fy = rng.Uniform(0.6, 1.4), ph = rng.Uniform(0, 6.3);
  std::vector<Blob> grains;
  for (int i = rng.UniformInt(2, 5); i > 0; --i) {
    const double a = rng.Uniform(0, 2 * kPi), d = rng.Uniform(0, 0.7) * body.r;
    grains.push_back({body.cx + std::cos(a) * d, body.cy + std::sin(a) * d, rng.Uniform(0.7, 1.2),
                      1, 0, 0, 0, 0, 0});
  }
  canvas->ForBox(body.cx, body.cy, body.r * 1.4, [&](int x, int y) {
    const double cov = body.Coverage(x, y);
    if (cov <= 0) return;
    const double mottle = 0.75 + 0.25 * std::sin(x * fx + ph) * std::sin(y * fy - ph);
    double grain = 0;
    for (const Blob &g : grains) grain = std::max(grain, g.Coverage(x, y));
    canvas->Absorb(x, y, st.parasite, cov * mottle);
    canvas->Absorb(x, y, st.pigment, grain * 0.8);
    if (cov >= 0.5) canvas->label(x, y) = kSynthParasite;
  });
}

// Separable Gaussian blur of an interleaved float image, mirrored borders.
void GaussianBlur(std::vector<float> *img, int size, int channels, double sigma) {
  const int radius = std::max(1, static_cast<int>(std::ceil(3 * sigma)));
  std::vector<float> k(2 * radius + 1);
  float sum = 0;
  for (int i = -radius; i <= radius; ++i) {
    k[i + radius] = static_cast<float>(std::exp(-0.5 * i * i / (sigma * sigma)));
    sum += k[i + radius];
  }
  for (float &v : k) v /= sum;
  const auto mirror = [size](int i) {
    if (i < 0) i = -i;
    if (i >= size) i = 2 * size - 2 - i;
    return std::clamp(i, 0, size - 1);
  };
  std::vector<float> tmp(img->size());
  for (int pass = 0; pass < 2; ++pass) {
    const std::vector<float> &src = pass == 0 ? *img : tmp;
    std::vector<float> &dst = pass == 0 ? tmp : *img;
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        for (int c = 0; c < channels; ++c) {
          float acc = 0;
          for (int i = -radius; i <= radius; ++i) {
            const int sx = pass == 0 ? mirror(x + i) : x;
            const int sy = pass == 0 ? y : mirror(y + i);
            acc += k[i + radius] * src[(static_cast<size_t>(sy) * size + sx) * channels + c];
          }
          dst[(static_cast<size_t>(y) * size + x) * channels + c] = acc;
        }
      }
    }
  }
}

}  // namespace

std::vector<ClassInfo> SyntheticClasses() {
  return {{kSynthBackground, "background"},
          {kSynthRedBloodCell, "red_blood_cell"},
          {kSynthParasite, "parasite"}};
}

absl::StatusOr<SyntheticSample> GenerateSyntheticSample(uint64_t seed, int index,
                                                        const SyntheticOptions &options) {
  if (options.size < 16 || options.size > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("synthetic: size must be in 16..4096 (got ", options.size, ")"));
  }
  if (!(options.cell_radius >= 3.0 && options.cell_radius <= options.size / 2.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "synthetic: cell_radius must be in 3..size/2 (got ", options.cell_radius, ")"));
  }
  Rng rng(MixSeed(seed, static_cast<uint64_t>(index), 0x91a5));
  const int size = options.size;
  const double r0 = options.cell_radius;
  const Stain stain = RandomStain(rng);
  Canvas canvas(size);

  // An occasional white cell, placed first; red cells keep clear of it.
  std::vector<Blob> white;
  if (rng.Bernoulli(0.2)) {
    white.push_back(Blob::Random(rng, rng.Uniform(0, size), rng.Uniform(0, size),
                                 r0 * rng.Uniform(1.5, 1.9), 0.05, 0.1));
  }
  // Red cells by rejection sampling: touching and partial overlaps, no
  // stacking.
  const double coverage = rng.Uniform(0.30, 0.52);
  const int target = static_cast<int>(coverage * size * size / (kPi * r0 * r0)) + 1;
  std::vector<Blob> cells;
  for (int attempt = 0; attempt < target * 40 && static_cast<int>(cells.size()) < target;
       ++attempt) {
    const double r = r0 * rng.Uniform(0.85, 1.15);
    const double cx = rng.Uniform(-0.5 * r, size + 0.5 * r);
    const double cy = rng.Uniform(-0.5 * r, size + 0.5 * r);
    bool ok = true;
    for (const Blob &c : cells) {
      ok = ok && std::hypot(c.cx - cx, c.cy - cy) > 0.78 * (c.r + r);
    }
    for (const Blob &w : white) ok = ok && std::hypot(w.cx - cx, w.cy - cy) > w.r + 0.8 * r;
    if (ok) cells.push_back(Blob::Random(rng, cx, cy, r, 0.045, 0.15));
  }
  for (const Blob &w : white) DrawWhiteCell(rng, stain, w, &canvas);
  for (const Blob &c : cells) {
    DrawRedCell(stain, c, rng.Uniform(0.35, 0.6), rng.Uniform(0.9, 1.1), &canvas);
  }
  // Parasites in cells well inside the image; at least one per image.
  const double parasitemia = rng.Uniform(0.10, 0.35);
  std::vector<int> eligible, infected;
  for (size_t i = 0; i < cells.size(); ++i) {
    const Blob &c = cells[i];
    if (c.cx > 0.6 * c.r && c.cy > 0.6 * c.r && c.cx < size - 0.6 * c.r &&
        c.cy < size - 0.6 * c.r) {
      eligible.push_back(static_cast<int>(i));
      if (rng.Bernoulli(parasitemia)) infected.push_back(static_cast<int>(i));
    }
  }
  if (infected.empty() && !eligible.empty()) {
    infected.push_back(eligible[rng.UniformInt(0, static_cast<int>(eligible.size()) - 1)]);
  }
  for (int i : infected) {
    if (rng.Bernoulli(0.7)) {
      for (int k = rng.Bernoulli(0.12) ? 2 : 1; k > 0; --k) DrawRing(rng, stain, cells[i], &canvas);
    } else {
      DrawTrophozoite(rng, stain, cells[i], &canvas);
    }
  }
  // Platelets and stain debris on the background: small purple specks, labelled
  // 0.
  for (int i = rng.UniformInt(0, 5); i > 0; --i) {
    const Blob b = Blob::Random(rng, rng.Uniform(0, size), rng.Uniform(0, size),
                                rng.Uniform(1.2, 2.8), 0.25, 0.4);
    if (canvas.label(std::clamp(static_cast<int>(b.cx), 0, size - 1),
                     std::clamp(static_cast<int>(b.cy), 0, size - 1)) != kSynthBackground) {
      continue;
    }
    const double strength = rng.Uniform(0.5, 1.0);
    canvas.ForBox(b.cx, b.cy, b.r * 1.5, [&](int x, int y) {
      canvas.Absorb(x, y, stain.platelet, b.Coverage(x, y) * strength);
    });
  }

  // Colour = background * uneven illumination * exp(-absorbance), then optics
  // and noise.
  std::vector<float> rgb(static_cast<size_t>(size) * size * 3);
  double fx[3], fy[3], ph[3], amp[3];
  for (int k = 0; k < 3; ++k) {
    fx[k] = rng.Uniform(-1.5, 1.5) * 2 * kPi / size;
    fy[k] = rng.Uniform(-1.5, 1.5) * 2 * kPi / size;
    ph[k] = rng.Uniform(0, 2 * kPi);
    amp[k] = rng.Uniform(0.005, 0.02);
  }
  const std::vector<float> &a = canvas.absorbance();
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      double light = 1.0;
      for (int k = 0; k < 3; ++k) light += amp[k] * std::cos(fx[k] * x + fy[k] * y + ph[k]);
      const size_t i = (static_cast<size_t>(y) * size + x) * 3;
      rgb[i] = static_cast<float>(stain.background.r * light * std::exp(-a[i]));
      rgb[i + 1] = static_cast<float>(stain.background.g * light * std::exp(-a[i + 1]));
      rgb[i + 2] = static_cast<float>(stain.background.b * light * std::exp(-a[i + 2]));
    }
  }
  GaussianBlur(&rgb, size, 3, rng.Uniform(0.55, 1.0));
  const double noise = rng.Uniform(0.006, 0.016);
  SyntheticSample out;
  out.image = Image::Create(size, size, 3, PixelDepth::kU8);
  for (size_t p = 0; p < static_cast<size_t>(size) * size; ++p) {
    const double grain = rng.Normal(0, noise * 0.7);  // shared by channels: luminance noise
    for (int c = 0; c < 3; ++c) {
      out.image.SetNormalized(
          p * 3 + c, static_cast<float>(rgb[p * 3 + c] + grain + rng.Normal(0, noise * 0.5)));
    }
  }
  out.mask = std::move(canvas.mask());
  return out;
}

Image RenderOverlay(const Image &image, const Mask &mask) {
  Image out = image;
  if (out.channels < 3 || out.height != mask.height || out.width != mask.width) return out;
  for (size_t p = 0; p < mask.num_pixels(); ++p) {
    if (mask.ids[p] == kSynthBackground) continue;
    const float tint[3] = {mask.ids[p] == kSynthParasite ? 1.0f : 0.0f,
                           mask.ids[p] == kSynthParasite ? 0.0f : 0.8f,
                           mask.ids[p] == kSynthParasite ? 1.0f : 0.0f};
    const float alpha = mask.ids[p] == kSynthParasite ? 0.55f : 0.25f;
    for (int c = 0; c < 3; ++c) {
      const size_t i = p * out.channels + c;
      out.SetNormalized(i, (1 - alpha) * out.GetNormalized(i) + alpha * tint[c]);
    }
  }
  return out;
}

absl::Status GenerateSyntheticDataset(const std::string &out_dir,
                                      const SyntheticDatasetOptions &options) {
  if (options.count < 1 || options.count > 1000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("synthetic: count must be in 1..1000000 (got ", options.count, ")"));
  }
  if (options.shift.level < 0 || options.shift.level > kMaxShiftLevel) {
    return absl::InvalidArgumentError(
        absl::StrCat("synthetic: shift level must be in 0..", kMaxShiftLevel));
  }
  std::vector<std::string> ids;
  for (int i = 0; i < options.count; ++i) ids.push_back(absl::StrFormat("synth_%05d", i));
  DatasetManifest manifest;
  manifest.name = options.name;
  manifest.channels = 3;
  manifest.classes = SyntheticClasses();
  manifest.domain = ShiftToString(options.shift);
  SplitRatios ratios = options.ratios;
  ratios.seed = options.seed;
  ASSIGN_OR_RETURN(manifest.split_lists, SplitByRatios(ids, ratios));
  ASSIGN_OR_RETURN(std::unique_ptr<DatasetWriter> writer,
                   DatasetWriter::Create(out_dir, std::move(manifest)));
  std::atomic<int> next{0};
  std::atomic<int> written{0};
  std::mutex mu;
  absl::Status first_error;
  const auto work = [&] {
    for (int i = next++; i < options.count; i = next++) {
      absl::Status s = [&]() -> absl::Status {
        ASSIGN_OR_RETURN(SyntheticSample sample,
                         GenerateSyntheticSample(options.seed, i, options.sample));
        RETURN_IF_ERROR(ApplyShift(options.shift, &sample.image));
        RETURN_IF_ERROR(writer->Add(ids[i], sample.image, sample.mask));
        const int done = ++written;
        if (options.on_image_written) options.on_image_written(done);
        return absl::OkStatus();
      }();
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = s;
        next = options.count;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < std::max(1, options.threads); ++t) threads.emplace_back(work);
  work();
  for (std::thread &t : threads) t.join();
  RETURN_IF_ERROR(first_error);
  return writer->Finish();
}

}  // namespace segserve::data
