#include "server/model/loss.h"

#include <vector>

namespace segserve::model {

torch::Tensor SegmentationLoss(const torch::Tensor& logits, const torch::Tensor& target,
                               double ce_weight, double dice_weight) {
  torch::Tensor loss = torch::zeros({}, logits.options());
  if (ce_weight > 0) {
    loss = loss + ce_weight * torch::nn::functional::cross_entropy(logits, target);
  }
  const int64_t classes = logits.size(1);
  if (dice_weight > 0 && classes > 1) {
    const torch::Tensor probs = torch::softmax(logits, 1);
    const torch::Tensor onehot = torch::zeros_like(probs).scatter_(1, target.unsqueeze(1), 1.0);
    const torch::Tensor p = probs.narrow(1, 1, classes - 1);
    const torch::Tensor t = onehot.narrow(1, 1, classes - 1);
    const std::vector<int64_t> dims = {0, 2, 3};
    const torch::Tensor inter = (p * t).sum(dims);
    const torch::Tensor card = p.sum(dims) + t.sum(dims);
    const torch::Tensor dice = (2.0 * inter + 1.0) / (card + 1.0);
    loss = loss + dice_weight * (1.0 - dice.mean());
  }
  return loss;
}

}  // namespace segserve::model
