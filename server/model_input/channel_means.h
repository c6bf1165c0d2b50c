// File: server/model_input/channel_means.h — the torch-aware half of tap_means.h: the
// per-image spatial mean of every channel of every tap of a forward pass, as plain floats.
// Include it only from .cc files that already use torch (model/unet.h pulls in
// <torch/torch.h>).
#pragma once

#include "absl/status/statusor.h"
#include "server/model/unet.h"
#include "server/model_input/tap_means.h"

namespace segserve::model_input {

// One LayerMeans per tap, in tap order: mean over H and W of each N x C x H x W tap, in
// float32 on the CPU. InvalidArgument for a tap that is not 4-D; Internal for a LibTorch
// error. The reductions run on the taps' device; only N x C floats per tap are copied back.
absl::StatusOr<TapMeans> ChannelMeans(const model::UnetOutput& output);

}  // namespace segserve::model_input
