// One optimisation step and dynamic loss scaling (trainer_internal.h).
#include <torch/torch.h>

#include <algorithm>
#include <optional>

#include "server/model/autocast.h"
#include "server/model/loss.h"
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

torch::Tensor TrainStep(model::Unet& model, torch::optim::Optimizer& optimizer,
                        const torch::Tensor& x, const torch::Tensor& y, double ce_weight,
                        double dice_weight, const std::string& precision, LossScaler* scaler) {
  optimizer.zero_grad();
  torch::Tensor logits;
  {
    // Mixed precision: the forward pass under autocast (backward replays it in the same
    // dtypes); the loss and everything after it in fp32.
    std::optional<model::AutocastGuard> autocast;
    if (precision != "fp32") {
      autocast.emplace(x.device(), precision == "bf16" ? torch::kBFloat16 : torch::kHalf);
    }
    logits = model->forward(x);
  }
  torch::Tensor loss =
      model::SegmentationLoss(logits.to(torch::kFloat32), y, ce_weight, dice_weight);
  if (scaler != nullptr) {
    scaler->Scale(loss).backward();
    if (scaler->UnscaleAndUpdate(optimizer.parameters())) optimizer.step();
  } else {
    loss.backward();
    optimizer.step();
  }
  return loss;
}

}  // namespace segserve::training::internal
