// File: server/model/unet.h — the segmentation_models_pytorch-compatible U-net (ResNet18/34
// encoder, decoder channels 256/128/64/32/16, conv3x3 head) with L0..L4 skip pruning,
// inputs of any size (as smp >= 0.5) and named feature taps.
//
// State-dict keys are exactly smp's `Unet` keys: encoder.*, decoder.blocks.<i>.conv{1,2}.{0,1}.*,
// segmentation_head.0.{weight,bias} (smp's decoder centre and attention are Identity and have
// no keys). Pruning level k drops the skips into decoder blocks 4-k..3, i.e. the k
// highest-resolution skips (L1: the stride-2 stem skip); a pruned block only has fewer input
// channels.
#pragma once

#include <torch/torch.h>

#include <array>
#include <string>
#include <vector>

#include "server/model/layers.h"
#include "server/model/model_config.h"
#include "server/model/resnet_encoder.h"

namespace segserve::model {

inline constexpr std::array<int, 5> kDecoderChannels = {256, 128, 64, 32, 16};

// One decoder block: nearest upsampling to height x width (the next encoder level's size),
// concatenation with the skip (when used), conv1 and conv2 (each conv3x3 + BN + ReLU).
class DecoderBlockImpl : public torch::nn::Module {
 public:
  DecoderBlockImpl(int in_channels, int skip_channels, int out_channels);
  // `skip` undefined for a block without skip.
  torch::Tensor forward(const torch::Tensor& x, int64_t height, int64_t width,
                        const torch::Tensor& skip);
  void FoldBatchNorm();

 private:
  ConvBn conv1_;
  ConvBn conv2_;
};
TORCH_MODULE(DecoderBlock);

// A named activation: the forward pass's own activation (no copy). A tap of output stride s
// is ceil(H/s) x ceil(W/s).
struct NamedTensor {
  std::string name;
  torch::Tensor tensor;
};

struct UnetOutput {
  torch::Tensor logits;           // N x classes x H x W, the input's H and W
  std::vector<NamedTensor> taps;  // in TapNames() order
};

class UnetImpl : public torch::nn::Module {
 public:
  // `config` must pass Validate(); the weights are initialised randomly (LibTorch defaults).
  explicit UnetImpl(const UnetConfig& config);

  // N x in_channels x H x W (any H, W >= 1) -> logits of the same H x W. No padding: as in
  // segmentation_models_pytorch >= 0.5, each stride-2 stage gives ceil(size / 2) and each
  // decoder block upsamples (nearest) to the size of the encoder level it returns to, so
  // imported smp weights give smp's outputs at every size; for sizes divisible by 32 this
  // is the same as smp < 0.5's fixed 2x upsampling. Throws c10::Error on bad input;
  // callers outside model/ use ServableModel.
  torch::Tensor forward(const torch::Tensor& x);
  // As forward, also returning the activations named in TapNames().
  UnetOutput ForwardWithTaps(const torch::Tensor& x);

  // Folds every BatchNorm into its convolution (inference only; irreversible). The BN keys
  // remain in the state dict but are unused; checkpoints refuse folded models.
  void FoldBatchNorm();
  bool folded() const { return folded_; }
  const UnetConfig& config() const { return config_; }

  // encoder.stem, encoder.layer1..4, decoder.block0..4.
  static const std::vector<std::string>& TapNames();
  // Output stride of each tap, in TapNames() order.
  static const std::array<int, 10>& TapStrides();

 private:
  UnetOutput Run(const torch::Tensor& x, bool taps);

  UnetConfig config_;
  ResNetEncoder encoder_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::Conv2d head_{nullptr};
  std::array<bool, 5> skip_used_{};
  bool folded_ = false;
};
TORCH_MODULE(Unet);

// Number of parameter elements, and the number of state-dict entries (parameters + buffers).
int64_t CountParameters(torch::nn::Module& module);
int64_t CountStateDictKeys(torch::nn::Module& module);

}  // namespace segserve::model
