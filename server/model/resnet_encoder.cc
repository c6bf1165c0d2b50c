#include "server/model/resnet_encoder.h"

#include <string>

namespace segserve::model {
namespace {

torch::nn::Conv2dOptions Conv3x3(int in_channels, int out_channels, int stride) {
  return torch::nn::Conv2dOptions(in_channels, out_channels, 3)
      .stride(stride)
      .padding(1)
      .bias(false);
}

torch::Tensor RunLayer(const torch::nn::ModuleList& layer, torch::Tensor x) {
  for (const auto& block : *layer) x = block->as<BasicBlockImpl>()->forward(x);
  return x;
}

}  // namespace

BasicBlockImpl::BasicBlockImpl(int in_channels, int out_channels, int stride)
    : conv1_(
          register_module("conv1", torch::nn::Conv2d(Conv3x3(in_channels, out_channels, stride)))),
      bn1_(register_module("bn1", torch::nn::BatchNorm2d(out_channels))),
      conv2_(register_module("conv2", torch::nn::Conv2d(Conv3x3(out_channels, out_channels, 1)))),
      bn2_(register_module("bn2", torch::nn::BatchNorm2d(out_channels))) {
  if (stride != 1 || in_channels != out_channels) {
    downsample_ = register_module(
        "downsample", ConvBn(in_channels, out_channels, /*kernel=*/1, stride, /*padding=*/0,
                             /*relu=*/false));
  }
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor out = conv1_(x);
  if (!folded_) out = bn1_(out);
  out = torch::relu_(out);
  out = conv2_(out);
  if (!folded_) out = bn2_(out);
  out += downsample_ ? downsample_(x) : x;
  return torch::relu_(out);
}

void BasicBlockImpl::FoldBatchNorm() {
  if (folded_) return;
  conv1_ = replace_module("conv1", model::FoldBatchNorm(conv1_, bn1_));
  conv2_ = replace_module("conv2", model::FoldBatchNorm(conv2_, bn2_));
  if (downsample_) downsample_->FoldBatchNorm();
  folded_ = true;
}

ResNetEncoderImpl::ResNetEncoderImpl(EncoderKind kind, int in_channels) {
  conv1_ = register_module(
      "conv1", torch::nn::Conv2d(
                   torch::nn::Conv2dOptions(in_channels, 64, 7).stride(2).padding(3).bias(false)));
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(64));
  const std::array<int, 4> blocks = kind == EncoderKind::kResNet18 ? std::array<int, 4>{2, 2, 2, 2}
                                                                   : std::array<int, 4>{3, 4, 6, 3};
  int channels = 64;
  for (int i = 0; i < 4; ++i) {
    const int out_channels = kChannels[i + 1];
    layers_[i] = register_module("layer" + std::to_string(i + 1),
                                 MakeLayer(channels, out_channels, blocks[i], i == 0 ? 1 : 2));
    channels = out_channels;
  }
}

torch::nn::ModuleList ResNetEncoderImpl::MakeLayer(int in_channels, int out_channels, int blocks,
                                                   int stride) {
  torch::nn::ModuleList layer;
  layer->push_back(BasicBlock(in_channels, out_channels, stride));
  for (int i = 1; i < blocks; ++i) layer->push_back(BasicBlock(out_channels, out_channels, 1));
  return layer;
}

EncoderFeatures ResNetEncoderImpl::forward(const torch::Tensor& x) {
  EncoderFeatures f;
  torch::Tensor stem = conv1_(x);
  if (!folded_) stem = bn1_(stem);
  f.stem = torch::relu_(stem);
  torch::Tensor pooled = torch::max_pool2d(f.stem, /*kernel_size=*/3, /*stride=*/2, /*padding=*/1);
  f.layer1 = RunLayer(layers_[0], pooled);
  f.layer2 = RunLayer(layers_[1], f.layer1);
  f.layer3 = RunLayer(layers_[2], f.layer2);
  f.layer4 = RunLayer(layers_[3], f.layer3);
  return f;
}

void ResNetEncoderImpl::FoldBatchNorm() {
  if (folded_) return;
  conv1_ = replace_module("conv1", model::FoldBatchNorm(conv1_, bn1_));
  for (auto& layer : layers_) {
    for (const auto& block : *layer) block->as<BasicBlockImpl>()->FoldBatchNorm();
  }
  folded_ = true;
}

}  // namespace segserve::model
