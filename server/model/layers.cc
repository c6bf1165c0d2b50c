#include "server/model/layers.h"

namespace segserve::model {

torch::nn::Conv2d FoldBatchNorm(const torch::nn::Conv2d& conv, const torch::nn::BatchNorm2d& bn) {
  torch::NoGradGuard no_grad;
  const auto& o = conv->options;
  torch::nn::Conv2d folded(
      torch::nn::Conv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
          .stride(o.stride())
          .padding(o.padding())
          .dilation(o.dilation())
          .groups(o.groups())
          .padding_mode(o.padding_mode())
          .bias(true));
  const auto dtype = conv->weight.scalar_type();
  const torch::Tensor scale = bn->weight.to(torch::kDouble) /
                              torch::sqrt(bn->running_var.to(torch::kDouble) + bn->options.eps());
  torch::Tensor bias =
      conv->bias.defined() ? conv->bias.to(torch::kDouble) : torch::zeros_like(scale);
  const torch::Tensor new_bias =
      bn->bias.to(torch::kDouble) + (bias - bn->running_mean.to(torch::kDouble)) * scale;
  const torch::Tensor new_weight = conv->weight.to(torch::kDouble) * scale.view({-1, 1, 1, 1});
  folded->weight.set_data(new_weight.to(dtype).contiguous(conv->weight.suggest_memory_format()));
  folded->bias.set_data(new_bias.to(dtype));
  folded->to(conv->weight.device());
  if (!conv->is_training()) folded->eval();
  return folded;
}

ConvBnImpl::ConvBnImpl(int in_channels, int out_channels, int kernel, int stride, int padding,
                       bool relu)
    : conv_(register_module(
          "0", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, kernel)
                                     .stride(stride)
                                     .padding(padding)
                                     .bias(false)))),
      bn_(register_module("1", torch::nn::BatchNorm2d(out_channels))),
      relu_(relu) {}

torch::Tensor ConvBnImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = conv_(x);
  if (!folded_) y = bn_(y);
  return relu_ ? torch::relu_(y) : y;
}

void ConvBnImpl::FoldBatchNorm() {
  if (folded_) return;
  conv_ = replace_module("0", model::FoldBatchNorm(conv_, bn_));
  folded_ = true;
}

}  // namespace segserve::model
