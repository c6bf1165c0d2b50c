// File: server/model/resnet_encoder.h — ResNet18/34 encoder with the module names of
// segmentation_models_pytorch's ResNetEncoder (= torchvision's ResNet without fc/avgpool):
// conv1, bn1, layer1..layer4 of BasicBlocks (conv1, bn1, conv2, bn2, downsample.0/.1).
#pragma once

#include <torch/torch.h>

#include <array>
#include <optional>

#include "server/model/layers.h"
#include "server/model/model_config.h"

namespace segserve::model {

class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int in_channels, int out_channels, int stride);
  torch::Tensor forward(const torch::Tensor& x);
  void FoldBatchNorm();

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv2_;
  torch::nn::BatchNorm2d bn2_;
  ConvBn downsample_{nullptr};
  bool folded_ = false;
};
TORCH_MODULE(BasicBlock);

// Encoder features at strides 2 (stem: relu(bn1(conv1(x)))), 4 (layer1, after the max-pool),
// 8, 16 and 32 (layer4); channels 64, 64, 128, 256, 512.
struct EncoderFeatures {
  torch::Tensor stem, layer1, layer2, layer3, layer4;
};

class ResNetEncoderImpl : public torch::nn::Module {
 public:
  ResNetEncoderImpl(EncoderKind kind, int in_channels);
  EncoderFeatures forward(const torch::Tensor& x);
  void FoldBatchNorm();

  // Output channels of stem, layer1..layer4.
  static constexpr std::array<int, 5> kChannels = {64, 64, 128, 256, 512};

 private:
  torch::nn::ModuleList MakeLayer(int in_channels, int out_channels, int blocks, int stride);

  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::array<torch::nn::ModuleList, 4> layers_ = {nullptr, nullptr, nullptr, nullptr};
  bool folded_ = false;
};
TORCH_MODULE(ResNetEncoder);

}  // namespace segserve::model
