// Dynamic loss scaling for fp16 training (trainer_internal.h).
#include <torch/torch.h>

#include <algorithm>

#include "server/training/trainer_internal.h"

namespace segserve::training::internal {

bool LossScaler::UnscaleAndUpdate(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  const double inverse = 1.0 / scale_;
  // One flag tensor for all gradients: a single host sync per step.
  torch::Tensor finite;
  for (const torch::Tensor& p : params) {
    if (!p.grad().defined()) continue;
    torch::Tensor grad = p.grad();
    grad.mul_(inverse);
    torch::Tensor all = torch::isfinite(grad).all();
    finite = finite.defined() ? finite.logical_and(all) : all;
  }
  const bool ok = !finite.defined() || finite.item<bool>();
  if (!ok) {
    scale_ = std::max(1.0, scale_ * 0.5);
    good_steps_ = 0;
    ++skipped_;
    return false;
  }
  if (++good_steps_ >= growth_interval_) {
    scale_ = std::min(scale_ * 2.0, 16777216.0);
    good_steps_ = 0;
  }
  return true;
}

}  // namespace segserve::training::internal
