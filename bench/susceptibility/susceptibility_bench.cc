// File: bench/susceptibility/susceptibility_bench.cc — figures for docs/PERFORMANCE.md
// "Susceptibility":
//   1. analysis images/s (AnalyzeDatasets: loader, ForwardWithTaps, channel means,
//      histograms) vs plain inference images/s (the same loader and images, Forward only),
//      rounds interleaved so that machine load hits both alike;
//   2. peak RSS and histogram bytes (run twice with different --images: memory must not
//      follow the set size);
//   3. drift monitor: Observe per image vs the forward pass, and the channel-means step the
//      inference path would add.
// Usage: susceptibility_bench [--images N] [--size S] [--batch B] [--threads T] [--rounds R]
#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "server/data/loader.h"
#include "server/data/synthetic.h"
#include "server/metrics/metrics.h"
#include "server/model/servable_model.h"
#include "server/registry/registry.h"
#include "server/susceptibility/analyze_datasets.h"
#include "server/model_input/channel_means.h"
#include "server/susceptibility/drift_monitor.h"

using namespace segserve;
using Clock = std::chrono::steady_clock;

namespace {

double Secs(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

long PeakRssKb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

int Arg(int argc, char** argv, const std::string& name, int def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (name == argv[i]) return std::atoi(argv[i + 1]);
  }
  return def;
}

void Die(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
  std::exit(1);
}

// Plain inference over a split (twice: unshifted and shifted, as the analysis reads it).
int64_t PlainInference(model::ServableModel& m, std::shared_ptr<const data::Dataset> ds,
                       int batch) {
  const model::UnetConfig cfg = model::WithDefaultNormalisation(m.config());
  int64_t images = 0;
  for (const char* shift : {"", "brightness:3"}) {
    data::LoaderOptions lo;
    lo.split = data::Split::kTrain;
    lo.batch_size = batch;
    lo.shuffle = false;
    lo.augment.random_crop = lo.augment.flips = lo.augment.rotate90 = lo.augment.color = false;
    lo.shift = *data::ParseShift(shift);
    lo.normalization = {cfg.mean, cfg.std};
    auto loader = data::Loader::Create(ds, lo);
    if (!loader.ok()) Die(loader.status());
    while (true) {
      auto b = (*loader)->Next();
      if (!b.ok()) Die(b.status());
      if (!*b) break;
      torch::Tensor x = torch::from_blob((*b)->images.data(), {(*b)->n, (*b)->c, (*b)->h, (*b)->w});
      auto out = m.Forward(x);
      if (!out.ok()) Die(out.status());
      images += (*b)->n;
    }
  }
  return images;
}

}  // namespace

int main(int argc, char** argv) {
  const int images = Arg(argc, argv, "--images", 64);
  const int size = Arg(argc, argv, "--size", 128);
  const int batch = Arg(argc, argv, "--batch", 8);
  const int threads = Arg(argc, argv, "--threads", 2);
  const int rounds = Arg(argc, argv, "--rounds", 3);
  const std::string dir = "/tmp/susc_bench_" + std::to_string(getpid());
  data::SyntheticDatasetOptions so;
  so.count = images;
  so.sample.size = size;
  so.sample.cell_radius = 14.0 * size / 256;
  so.ratios = {1.0, 0.0, 0.0, 0};
  if (auto s = data::GenerateSyntheticDataset(dir, so); !s.ok()) Die(s);
  auto ds_or = data::OpenDataset(dir);
  if (!ds_or.ok()) Die(ds_or.status());
  auto ds = std::make_shared<const data::Dataset>(std::move(*ds_or));

  model::UnetConfig cfg;
  cfg.encoder = model::EncoderKind::kResNet18;
  cfg.skip_prune_level = 1;
  cfg.classes = 3;
  torch::manual_seed(1);
  model::ServeOptions serve;
  serve.intra_op_threads = threads;
  auto servable_or = model::ServableModel::Create(model::Unet(cfg), serve);
  if (!servable_or.ok()) Die(servable_or.status());
  auto loaded = std::make_shared<registry::LoadedModel>();
  loaded->stored.name = "bench";
  loaded->stored.version = 1;
  loaded->servable = std::move(*servable_or);
  model::ServableModel& m = *loaded->servable;

  susceptibility::ImageSet source, target;
  source.dataset_dir = target.dataset_dir = dir;
  source.split = target.split = "train";
  target.shift = "brightness:3";
  susceptibility::AnalysisOptions ao;
  ao.batch_size = batch;

  PlainInference(m, ds, batch);  // warm-up
  double plain_s = 0, analysis_s = 0;
  int64_t plain_n = 0, analysis_n = 0;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    plain_n += PlainInference(m, ds, batch);
    plain_s += Secs(t0);
    t0 = Clock::now();
    auto reports = susceptibility::AnalyzeDatasets({loaded}, source, target, ao);
    if (!reports.ok()) Die(reports.status());
    analysis_s += Secs(t0);
    analysis_n += (*reports)[0].source_images + (*reports)[0].target_images;
  }
  const double plain_ips = plain_n / plain_s, analysis_ips = analysis_n / analysis_s;
  std::printf("size %d images %d batch %d threads %d rounds %d\n", size, images, batch, threads,
              rounds);
  std::printf("plain inference  %.2f images/s\n", plain_ips);
  std::printf("analysis         %.2f images/s  (%.3fx)\n", analysis_ips, analysis_ips / plain_ips);
  std::printf("peak RSS         %ld KiB\n", PeakRssKb());

  // Drift monitor: reference from random statistics of the right shape.
  metrics::Metrics metrics;
  susceptibility::DriftMonitor monitor(metrics);
  torch::Tensor x = torch::randn({1, 3, size, size});
  auto out = m.ForwardWithTaps(x);
  if (!out.ok()) Die(out.status());
  auto means = model_input::ChannelMeans(*out);
  if (!means.ok()) Die(means.status());
  nlohmann::json ref = {{"bins", 32}, {"images", 100}, {"layers", nlohmann::json::array()}};
  for (const auto& l : *means) {
    std::vector<float> mean(l.channels), sd(l.channels, 0.1f), lo(l.channels), hi(l.channels);
    nlohmann::json hist = nlohmann::json::array();
    for (int c = 0; c < l.channels; ++c) {
      mean[c] = l.values[c];
      lo[c] = mean[c] - 0.3f;
      hi[c] = mean[c] + 0.3f;
      std::vector<int> h(32, 3);
      hist.push_back(h);
    }
    ref["layers"].push_back({{"name", l.layer}, {"channels", l.channels}, {"mean", mean},
                             {"std", sd}, {"min", lo}, {"max", hi}, {"hist", hist}});
  }
  if (auto s = monitor.SetReference("bench:1", ref); !s.ok()) Die(s);
  const int n_obs = 20000;
  auto t0 = Clock::now();
  for (int i = 0; i < n_obs; ++i) {
    for (auto& l : *means) l.values[i % l.values.size()] += 1e-4f;  // vary the input a little
    monitor.Observe("bench:1", *means, 0);
  }
  const double observe_us = Secs(t0) / n_obs * 1e6;
  const int n_fwd = 10;
  t0 = Clock::now();
  for (int i = 0; i < n_fwd; ++i) {
    if (!m.Forward(x).ok()) Die(absl::InternalError("forward"));
  }
  const double fwd_us = Secs(t0) / n_fwd * 1e6;
  t0 = Clock::now();
  for (int i = 0; i < n_fwd; ++i) {
    auto o = m.ForwardWithTaps(x);
    if (!o.ok()) Die(o.status());
    auto cm = model_input::ChannelMeans(*o);
    if (!cm.ok()) Die(cm.status());
  }
  const double taps_us = Secs(t0) / n_fwd * 1e6;
  std::printf("forward (batch 1)                 %.0f us/image\n", fwd_us);
  std::printf("forward with taps + channel means %.0f us/image (+%.2f%%)\n", taps_us,
              100.0 * (taps_us - fwd_us) / fwd_us);
  std::printf("drift Observe                     %.2f us/image (%.3f%% of forward)\n", observe_us,
              100.0 * observe_us / fwd_us);
  std::filesystem::remove_all(dir);
  return 0;
}
