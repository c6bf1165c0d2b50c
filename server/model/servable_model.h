// File: server/model/servable_model.h — a U-net prepared for serving: eval mode, BatchNorm
// folded, channels-last and optional bfloat16, intra-op threads set; input validated before
// LibTorch sees it and every LibTorch exception turned into a status.
//
// Threading: no lock is held. One executor thread calls Forward/ForwardWithTaps at a time per
// ServableModel (the inference engine's contract); distinct ServableModels may run in parallel.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/model/model_config.h"
#include "server/model/unet.h"

namespace segserve::model {

struct ServeOptions {
  // Fold BatchNorm into the preceding convolutions (same outputs within ~1e-5, fewer passes).
  bool fold_bn = true;
  // NHWC weights and activations; faster with oneDNN on CPU (docs/PERFORMANCE.md).
  bool channels_last = true;
  // Run in bfloat16 (about 2x on CPUs with AVX-512 BF16); logits still come back as float32.
  // Argmax agreement with float32 is reported in docs/PERFORMANCE.md.
  bool bfloat16 = false;
  // LibTorch intra-op threads for the executor thread; 0 leaves the process setting alone.
  // at::set_num_threads is process-wide, so all ServableModels should agree.
  int intra_op_threads = 0;
  // "cpu" or "cuda:N" (FailedPrecondition when this LibTorch has no CUDA device N).
  std::string device = "cpu";
};

class ServableModel {
 public:
  // Takes `model` over (it is modified in place: eval, folded, converted); the caller must not
  // use it afterwards. InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<ServableModel>> Create(Unet model,
                                                               const ServeOptions& options,
                                                               nlohmann::json metadata = {});
  // LoadCheckpoint + Create; the checkpoint's metadata is kept.
  static absl::StatusOr<std::unique_ptr<ServableModel>> CreateFromCheckpoint(
      const std::string& path, const ServeOptions& options);

  // `input`: N x in_channels x H x W float32, already normalised with config().mean/std, any
  // device (moved to the model's). Returns N x classes x H x W float32 logits, contiguous
  // NCHW, on the model's device. InvalidArgument naming `input` for a bad rank, channel count,
  // dtype or empty size; ResourceExhausted on out-of-memory; Internal otherwise.
  absl::StatusOr<torch::Tensor> Forward(const torch::Tensor& input);
  // As Forward, plus the taps of UnetImpl::TapNames(). Taps are views of the activations
  // (no copy) in float32 mode; in bfloat16 mode they are converted to float32 (one copy).
  absl::StatusOr<UnetOutput> ForwardWithTaps(const torch::Tensor& input);

  const UnetConfig& config() const { return config_; }
  const ServeOptions& options() const { return options_; }
  const nlohmann::json& metadata() const { return metadata_; }
  const torch::Device& device() const { return device_; }

 private:
  ServableModel(Unet model, ServeOptions options, torch::Device device, nlohmann::json metadata);
  absl::Status ValidateInput(const torch::Tensor& input) const;
  torch::Tensor Prepare(const torch::Tensor& input) const;
  void ApplyThreads() const;

  Unet model_;
  UnetConfig config_;
  ServeOptions options_;
  torch::Device device_;
  nlohmann::json metadata_;
};

}  // namespace segserve::model
