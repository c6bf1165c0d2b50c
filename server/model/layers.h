// File: server/model/layers.h — the small building blocks shared by the encoder and decoder:
// smp's Conv2dReLU / torchvision's downsample (conv + BatchNorm [+ ReLU], named "0" and "1"
// like the nn.Sequential they mirror) and BatchNorm folding.
#pragma once

#include <torch/torch.h>

namespace segserve::model {

// Returns a new biased convolution equal to `bn(conv(x))` with bn in eval mode; computed in
// float64 and stored in conv's dtype.
torch::nn::Conv2d FoldBatchNorm(const torch::nn::Conv2d& conv, const torch::nn::BatchNorm2d& bn);

// A conv (no bias) followed by BatchNorm and optionally ReLU. State-dict keys: 0.weight,
// 1.weight, 1.bias, 1.running_mean, 1.running_var, 1.num_batches_tracked.
class ConvBnImpl : public torch::nn::Module {
 public:
  ConvBnImpl(int in_channels, int out_channels, int kernel, int stride, int padding, bool relu);
  torch::Tensor forward(const torch::Tensor& x);
  // Replaces "0" by the folded conv and stops applying "1" (its keys stay, unused).
  void FoldBatchNorm();

 private:
  torch::nn::Conv2d conv_;
  torch::nn::BatchNorm2d bn_;
  bool relu_;
  bool folded_ = false;
};
TORCH_MODULE(ConvBn);

}  // namespace segserve::model
