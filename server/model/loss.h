// File: server/model/loss.h — the segmentation loss of the paper's setup (cross-entropy +
// soft Dice), in model/ so that training, the training benchmark and the GPU check (which
// builds only common/ and model/) share one definition.
#pragma once

#include <torch/torch.h>

namespace segserve::model {

// ce_weight * cross-entropy + dice_weight * (1 - mean soft Dice over foreground classes 1..C-1)
// with smoothing 1 (sums over the batch and all pixels). `logits`: N x C x H x W; `target`:
// N x H x W int64 on the same device.
torch::Tensor SegmentationLoss(const torch::Tensor& logits, const torch::Tensor& target,
                               double ce_weight, double dice_weight);

}  // namespace segserve::model
