// Loader throughput: images/s delivered to a training loop that does nothing else.
// Generates a synthetic set into a temporary folder (or reads --dataset DIR), then
// times full epochs of 256x256 batches of 8 with flips, rotations and colour jitter.
// For a NIfTI data set the images are slices; --cache_mb sets its volume cache (0: every
// slice decodes its volume; default: OpenOptions' 512 MiB) and the cache's hits and misses
// are printed. bench/data/nifti.sh runs it both ways.
//
//   data_loader_bench [--images 64] [--epochs 3] [--workers 2] [--batch 8] [--dataset DIR]
//                     [--cache_mb N]
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "server/data/loader.h"
#include "server/data/synthetic.h"
#include "server/data/volume_cache.h"

namespace {

using namespace segserve::data;  // NOLINT(build/namespaces): a benchmark's main

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

int main(int argc, char** argv) {
  int images = 64, epochs = 3, workers = 2, batch = 8;
  std::string dataset_dir;
  int64_t cache_mb = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--cache_mb")) cache_mb = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--images")) images = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--epochs")) epochs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--workers")) workers = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--dataset")) dataset_dir = argv[i + 1];
  }
  std::string temp;
  if (dataset_dir.empty()) {
    char tmpl[] = "/tmp/segserve_loader_bench_XXXXXX";
    temp = mkdtemp(tmpl);
    dataset_dir = temp + "/set";
    SyntheticDatasetOptions o;
    o.count = images;
    o.ratios = {1.0, 0.0, 0.0, 0};
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status s = GenerateSyntheticDataset(dataset_dir, o); !s.ok()) {
      std::fprintf(stderr, "generate: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    std::printf("generated %d synthetic 256x256 images in %.2f s (%.1f images/s, 2 threads)\n",
                images, Seconds(start), images / Seconds(start));
  }
  OpenOptions open;
  open.verify_contents = false;  // as a training job opens it
  if (cache_mb >= 0) open.volume_cache_bytes = cache_mb << 20;
  auto opened_at = std::chrono::steady_clock::now();
  absl::StatusOr<Dataset> dataset = OpenDataset(dataset_dir, open);
  if (!dataset.ok()) {
    std::fprintf(stderr, "open: %s\n", std::string(dataset.status().message()).c_str());
    return 1;
  }
  std::printf("opened %s: %zu samples", dataset_dir.c_str(), dataset->samples.size());
  if (dataset->volumetric()) {
    std::printf(" (slices of %zu volumes, volume cache %lld MiB)", dataset->volumes.size(),
                static_cast<long long>(open.volume_cache_bytes >> 20));
  }
  std::printf(" in %.2f s\n", Seconds(opened_at));
  auto shared = std::make_shared<const Dataset>(*std::move(dataset));
  LoaderOptions options;
  options.batch_size = batch;
  options.workers = workers;
  options.augment.color = true;  // flips and rotations are on by default
  if (!shared->volumetric()) {
    absl::StatusOr<Normalization> norm = ComputeNormalization(*shared, Split::kTrain);
    if (norm.ok()) options.normalization = *norm;
  }
  absl::StatusOr<std::unique_ptr<Loader>> loader = Loader::Create(shared, options);
  if (!loader.ok()) {
    std::fprintf(stderr, "loader: %s\n", std::string(loader.status().message()).c_str());
    return 1;
  }
  long delivered = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int epoch = 0; epoch < epochs; ++epoch) {
    (*loader)->StartEpoch(epoch);
    while (true) {
      absl::StatusOr<std::optional<Batch>> b = (*loader)->Next();
      if (!b.ok()) {
        std::fprintf(stderr, "next: %s\n", std::string(b.status().message()).c_str());
        return 1;
      }
      if (!b->has_value()) break;
      delivered += (*b)->n;
    }
  }
  const double seconds = Seconds(start);
  std::printf(
      "loader: %ld images in %.2f s = %.1f images/s (batch %d, %d workers, %dx%d, "
      "flips+rot90+colour%s)\n",
      delivered, seconds, delivered / seconds, batch, workers, shared->samples[0].height,
      shared->samples[0].width, shared->volumetric() ? "" : ", normalised");
  if (shared->volume_cache != nullptr) {
    const VolumeCache::Stats stats = shared->volume_cache->stats();
    std::printf("volume cache: %lld hits, %lld decodes, %lld evictions, %.1f MiB held\n",
                static_cast<long long>(stats.hits), static_cast<long long>(stats.misses),
                static_cast<long long>(stats.evictions), stats.bytes / 1048576.0);
  }
  if (!temp.empty()) std::filesystem::remove_all(temp);
  return 0;
}
