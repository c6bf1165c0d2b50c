#include "server/model/unet.h"

#include <algorithm>

namespace segserve::model {
namespace {

// Registers `module` under `name` inside a fresh holder module, so that keys read
// "<name>.<child>" like the nn.Sequential / nn.ModuleList containers smp uses.
class NamedContainerImpl : public torch::nn::Module {};
TORCH_MODULE(NamedContainer);

}  // namespace

DecoderBlockImpl::DecoderBlockImpl(int in_channels, int skip_channels, int out_channels)
    : conv1_(register_module("conv1", ConvBn(in_channels + skip_channels, out_channels, 3, 1, 1,
                                             /*relu=*/true))),
      conv2_(register_module("conv2", ConvBn(out_channels, out_channels, 3, 1, 1,
                                             /*relu=*/true))) {}

torch::Tensor DecoderBlockImpl::forward(const torch::Tensor& x, int64_t height, int64_t width,
                                        const torch::Tensor& skip) {
  namespace F = torch::nn::functional;
  // smp >= 0.5: nearest upsampling to the next encoder level's size. For sizes that halve
  // evenly this is exactly the 2x upsampling of earlier smp versions.
  torch::Tensor y = F::interpolate(x, F::InterpolateFuncOptions()
                                          .size(std::vector<int64_t>{height, width})
                                          .mode(torch::kNearest));
  if (skip.defined()) y = torch::cat({y, skip}, /*dim=*/1);
  return conv2_(conv1_(y));
}

void DecoderBlockImpl::FoldBatchNorm() {
  conv1_->FoldBatchNorm();
  conv2_->FoldBatchNorm();
}

UnetImpl::UnetImpl(const UnetConfig& config) : config_(WithDefaultNormalisation(config)) {
  encoder_ = register_module("encoder", ResNetEncoder(config_.encoder, config_.in_channels));
  // Skip sources for blocks 0..3: layer3, layer2, layer1, stem; block 4 has none.
  constexpr std::array<int, 5> kSkipChannels = {256, 128, 64, 64, 0};
  auto decoder = register_module("decoder", NamedContainer());
  blocks_ = decoder->register_module("blocks", torch::nn::ModuleList());
  int in_channels = ResNetEncoderImpl::kChannels[4];
  for (int i = 0; i < 5; ++i) {
    skip_used_[i] = i < 4 - config_.skip_prune_level;
    blocks_->push_back(
        DecoderBlock(in_channels, skip_used_[i] ? kSkipChannels[i] : 0, kDecoderChannels[i]));
    in_channels = kDecoderChannels[i];
  }
  auto head = register_module("segmentation_head", NamedContainer());
  head_ = head->register_module(
      "0", torch::nn::Conv2d(
               torch::nn::Conv2dOptions(kDecoderChannels[4], config_.classes, 3).padding(1)));
}

const std::vector<std::string>& UnetImpl::TapNames() {
  static const auto* names = new std::vector<std::string>{
      "encoder.stem",   "encoder.layer1", "encoder.layer2", "encoder.layer3", "encoder.layer4",
      "decoder.block0", "decoder.block1", "decoder.block2", "decoder.block3", "decoder.block4"};
  return *names;
}

const std::array<int, 10>& UnetImpl::TapStrides() {
  static constexpr std::array<int, 10> kStrides = {2, 4, 8, 16, 32, 16, 8, 4, 2, 1};
  return kStrides;
}

torch::Tensor UnetImpl::forward(const torch::Tensor& x) { return Run(x, false).logits; }

UnetOutput UnetImpl::ForwardWithTaps(const torch::Tensor& x) { return Run(x, true); }

UnetOutput UnetImpl::Run(const torch::Tensor& x, bool taps) {
  TORCH_CHECK(x.dim() == 4, "input must be N x C x H x W, got ", x.dim(), " dimensions");
  TORCH_CHECK(x.size(1) == config_.in_channels, "input must have ", config_.in_channels,
              " channels, got ", x.size(1));
  const EncoderFeatures f = encoder_(x);
  // Each block upsamples to the size of the encoder level it comes back to (whether or not
  // its skip is pruned); the last one to the input's size.
  const std::array<torch::Tensor, 4> skips = {f.layer3, f.layer2, f.layer1, f.stem};
  UnetOutput out;
  std::vector<torch::Tensor> activations;
  if (taps) activations = {f.stem, f.layer1, f.layer2, f.layer3, f.layer4};
  torch::Tensor y = f.layer4;
  for (int i = 0; i < 5; ++i) {
    const torch::Tensor& level = i < 4 ? skips[i] : x;
    const torch::Tensor skip = i < 4 && skip_used_[i] ? skips[i] : torch::Tensor();
    y = blocks_[i]->as<DecoderBlockImpl>()->forward(y, level.size(2), level.size(3), skip);
    if (taps) activations.push_back(y);
  }
  out.logits = head_(y);
  if (taps) {
    for (size_t i = 0; i < activations.size(); ++i) {
      out.taps.push_back({TapNames()[i], activations[i]});
    }
  }
  return out;
}

void UnetImpl::FoldBatchNorm() {
  if (folded_) return;
  encoder_->FoldBatchNorm();
  for (const auto& block : *blocks_) block->as<DecoderBlockImpl>()->FoldBatchNorm();
  folded_ = true;
}

int64_t CountParameters(torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters()) total += p.numel();
  return total;
}

int64_t CountStateDictKeys(torch::nn::Module& module) {
  return static_cast<int64_t>(module.named_parameters().size() + module.named_buffers().size());
}

}  // namespace segserve::model
