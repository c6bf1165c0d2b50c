// Forward throughput of the U-net: images/s at 256x256 for resnet18/34, L0/L1, batch 1/8,
// variants eager / BN-folded / folded+channels-last / folded+channels-last+bf16, plus the
// argmax agreement and mean IoU of bf16 against float32. Prints CSV lines:
//   cpp,<encoder>,<level>,<batch>,<variant>,<images_per_s>
//   agreement,<encoder>,<level>,<pixel_agreement>,<mean_iou>
// --allocator: tensors from segserve's retained heap (server/model/tensor_memory.h, what the
// server runs; the default) or LibTorch's own (`default`).
// Usage: model_bench [--threads N] [--seconds S] [--quick] [--encoder resnet18|resnet34]
//                    [--level 0|1] [--allocator retained|default]
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/model/random_unet.h"
#include "server/model/servable_model.h"
#include "server/model/tensor_memory.h"
#include "server/model/state_dict.h"
#include "server/model/unet.h"

namespace {

using segserve::bench::Calibrate;
using segserve::bench::CopyOf;
using segserve::model::EncoderKind;
using segserve::model::ServableModel;
using segserve::model::ServeOptions;
using segserve::model::Unet;
using segserve::model::UnetConfig;

// Fastest forward (seconds) over at least 3 timed runs and ~`seconds` of wall time: on a
// shared 2-core box the minimum is the figure least disturbed by other load.
double TimeForward(ServableModel& model, const torch::Tensor& x, double seconds) {
  if (!model.Forward(x).ok()) std::exit(1);  // warm-up (oneDNN primitive creation)
  std::vector<double> times;
  const auto start = std::chrono::steady_clock::now();
  while (times.size() < 3 ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
             seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    auto y = model.Forward(x);
    if (!y.ok()) std::exit(1);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (times.size() >= 50) break;
  }
  return *std::min_element(times.begin(), times.end());
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  double seconds = 1.5;
  bool quick = false;
  std::string only_encoder;
  int only_level = -1;
  std::string allocator = "retained";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = std::atof(argv[++i]);
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--encoder") && i + 1 < argc) only_encoder = argv[++i];
    if (!std::strcmp(argv[i], "--level") && i + 1 < argc) only_level = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--allocator") && i + 1 < argc) allocator = argv[++i];
  }
  if (allocator == "retained") {
    segserve::model::InstallTensorAllocator();
  } else if (allocator != "default") {
    std::fprintf(stderr, "--allocator is retained or default, not %s\n", allocator.c_str());
    return 2;
  }
  at::set_num_threads(threads);
  torch::manual_seed(0);
  struct Variant {
    const char* name;
    bool fold, channels_last, bf16;
  };
  const Variant variants[] = {{"eager", false, false, false},
                              {"folded", true, false, false},
                              {"folded+cl", true, true, false},
                              {"folded+cl+bf16", true, true, true}};
  for (EncoderKind encoder : {EncoderKind::kResNet18, EncoderKind::kResNet34}) {
    for (int level : {0, 1}) {
      if (!only_encoder.empty() && only_encoder != segserve::model::EncoderName(encoder)) continue;
      if (only_level >= 0 && only_level != level) continue;
      UnetConfig config;
      config.encoder = encoder;
      config.skip_prune_level = level;
      Unet base(config);
      Calibrate(base);
      const std::string name(segserve::model::EncoderName(encoder));
      const torch::Tensor images = torch::randn({8, 3, 256, 256});  // agreement inputs
      for (int batch : {1, 8}) {
        if (quick && batch == 8) continue;
        const torch::Tensor x = torch::randn({batch, 3, 256, 256});
        torch::Tensor fp32_logits;
        for (const Variant& v : variants) {
          ServeOptions options;
          options.fold_bn = v.fold;
          options.channels_last = v.channels_last;
          options.bfloat16 = v.bf16;
          options.intra_op_threads = threads;
          auto model = ServableModel::Create(CopyOf(base), options);
          if (!model.ok()) {
            std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
            return 1;
          }
          const double t = TimeForward(**model, x, seconds);
          std::printf("cpp,%s,%d,%d,%s,%.2f\n", name.c_str(), level, batch, v.name, batch / t);
          std::fflush(stdout);
          if (batch == 1) {
            // Agreement with float32 eager on the same 8 images, argmax per pixel.
            auto logits = (*model)->Forward(images);
            if (!logits.ok()) return 1;
            if (!v.fold && !v.channels_last && !v.bf16) fp32_logits = *logits;
            if (v.bf16) {
              const torch::Tensor a = logits->argmax(1);
              const torch::Tensor b = fp32_logits.argmax(1);
              const double agreement = a.eq(b).to(torch::kFloat64).mean().item<double>();
              double iou_sum = 0;
              for (int c = 0; c < config.classes; ++c) {
                const torch::Tensor pa = a.eq(c), pb = b.eq(c);
                const double inter = (pa & pb).sum().item<double>();
                const double uni = (pa | pb).sum().item<double>();
                iou_sum += uni > 0 ? inter / uni : 1.0;
              }
              std::printf("agreement,%s,%d,%.5f,%.5f\n", name.c_str(), level, agreement,
                          iou_sum / config.classes);
            }
          }
        }
      }
    }
  }
  return 0;
}
