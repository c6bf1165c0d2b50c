#include "bench/model/random_unet.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "server/model/state_dict.h"

namespace segserve::bench {

// Random weights as in tests/model/reference_unet.py (He-normal convs, BN affine near 1/0),
// BatchNorm statistics calibrated on random inputs so activations are O(1) as in a trained net.
void Calibrate(model::Unet& model) {
  {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      const std::string& name = item.key();
      torch::Tensor& p = item.value();
      if (p.dim() == 4) {
        p.normal_(0.0, std::sqrt(2.0 / static_cast<double>(p[0].numel())));
      } else if (name.find("segmentation_head") != std::string::npos) {
        p.normal_(0.0, 0.1);
      } else if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) {
        p.uniform_(0.75, 1.25);
      } else {
        p.normal_(0.0, 0.1);
      }
    }
  }
  for (auto& module : model->modules(/*include_self=*/false)) {
    if (auto* bn = module->as<torch::nn::BatchNorm2dImpl>()) {
      bn->reset_running_stats();
      bn->options.momentum(c10::nullopt);
    }
  }
  torch::NoGradGuard no_grad;
  model->train();
  for (int i = 0; i < 2; ++i)
    model->forward(torch::randn({2, model->config().in_channels, 128, 128}));
  model->eval();
}

model::Unet CopyOf(model::Unet& model) {
  model::Unet copy(model->config());
  auto report = model::LoadStateDict(copy, model::GetStateDict(*model));
  if (!report.ok()) {
    std::fprintf(stderr, "%s\n", report.status().ToString().c_str());
    std::exit(1);
  }
  copy->eval();
  return copy;
}

}  // namespace segserve::bench
