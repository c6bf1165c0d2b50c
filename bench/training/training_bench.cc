// File: bench/training/training_bench.cc — training throughput of the U-net: the TRAIN job's
// own step (server/training's TrainStep: forward, the segserve loss (CE + soft Dice),
// backward and an Adam step) on random 256x256 images, NCHW and channels-last, fp32 and bf16
// autocast. Prints
//   cpp,<encoder>,<level>,<batch>,<layout>,<precision>,<images_per_s>
// (median step time over --steps steps after 2 warm-up steps). --allocator says where the
// tensors' memory comes from: `retained` (segserve's, server/model/tensor_memory.h, the
// default) or `default` (LibTorch's own allocator, as segserve was before); the first
// column is then `cpp` or `cpp-default`.
// Usage: training_bench [--threads 2] [--batch 8] [--steps 5] [--size 256] [--level 1]
//                       [--encoder resnet18] [--layout nchw|cl|both]
//                       [--precision fp32|bf16|both] [--allocator retained|default]
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "server/model/tensor_memory.h"
#include "server/model/unet.h"
#include "server/training/trainer_internal.h"

namespace {

using segserve::model::Unet;
using segserve::model::UnetConfig;

double Run(const UnetConfig& config, int batch, int size, int steps, bool channels_last,
           const std::string& precision) {
  torch::manual_seed(0);
  Unet model(config);
  if (channels_last) segserve::training::internal::ToChannelsLast(model);
  model->train();
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-3));
  torch::Tensor x = torch::randn({batch, config.in_channels, size, size});
  if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  const torch::Tensor y = torch::randint(0, config.classes, {batch, size, size}, torch::kLong);
  std::vector<double> times;
  for (int i = 0; i < steps + 2; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    torch::Tensor loss = segserve::training::internal::TrainStep(model, adam, x, y, 1.0, 1.0,
                                                                 precision, nullptr);
    (void)loss.item<float>();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 2) times.push_back(s);
  }
  std::sort(times.begin(), times.end());
  return batch / times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, batch = 8, steps = 5, size = 256, level = 1;
  std::string encoder = "resnet18", layout = "both", precision = "fp32", allocator = "retained";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--threads")
      threads = std::atoi(v);
    else if (flag == "--batch")
      batch = std::atoi(v);
    else if (flag == "--steps")
      steps = std::atoi(v);
    else if (flag == "--size")
      size = std::atoi(v);
    else if (flag == "--level")
      level = std::atoi(v);
    else if (flag == "--encoder")
      encoder = v;
    else if (flag == "--layout")
      layout = v;
    else if (flag == "--precision")
      precision = v;
    else if (flag == "--allocator")
      allocator = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (allocator == "retained") {
    segserve::model::InstallTensorAllocator();
  } else if (allocator != "default") {
    std::fprintf(stderr, "--allocator is retained or default, not %s\n", allocator.c_str());
    return 2;
  }
  at::set_num_threads(threads);
  UnetConfig config;
  auto kind = segserve::model::ParseEncoderKind(encoder);
  if (!kind.ok()) return 2;
  config.encoder = *kind;
  config.skip_prune_level = level;
  config.classes = 3;
  for (const bool cl : {false, true}) {
    if ((layout == "nchw" && cl) || (layout == "cl" && !cl)) continue;
    for (const std::string p : {"fp32", "bf16"}) {
      if (precision != "both" && precision != p) continue;
      // On a thread of its own, as a TRAIN job runs in the server: glibc gives such a
      // thread its own arena, whose heaps are kept and trimmed differently from the main
      // thread's, so the main thread would measure another allocator behaviour.
      double ips = 0;
      std::thread job([&] { ips = Run(config, batch, size, steps, cl, p); });
      job.join();
      std::printf("%s,%s,%d,%d,%s,%s,%.3f\n", allocator == "retained" ? "cpp" : "cpp-default",
                  encoder.c_str(), level, batch, cl ? "cl" : "nchw", p.c_str(), ips);
      std::fflush(stdout);
    }
  }
  return 0;
}
