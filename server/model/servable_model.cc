#include "server/model/servable_model.h"

#include <ATen/Parallel.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/checkpoint.h"
#include "server/model/device.h"
#include "server/model/torch_status.h"

namespace segserve::model {
namespace {

absl::StatusOr<torch::Device> ParseDevice(const std::string& name) {
  RETURN_IF_ERROR(CheckDevice(name, "device"));
  try {
    return torch::Device(name);
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(
        absl::StrCat("device: expected cpu, cuda or cuda:N, got '", name, "'"));
  }
}

}  // namespace

ServableModel::ServableModel(Unet model, ServeOptions options, torch::Device device,
                             nlohmann::json metadata)
    : model_(std::move(model)),
      config_(model_->config()),
      options_(std::move(options)),
      device_(device),
      metadata_(std::move(metadata)) {}

absl::StatusOr<std::unique_ptr<ServableModel>> ServableModel::Create(Unet model,
                                                                     const ServeOptions& options,
                                                                     nlohmann::json metadata) {
  if (!model) return absl::InvalidArgumentError("model must not be null");
  if (options.intra_op_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("intra_op_threads must be >= 0, got ", options.intra_op_threads));
  }
  ASSIGN_OR_RETURN(torch::Device device, ParseDevice(options.device));
  RETURN_IF_ERROR(CallTorch("preparing model for serving", [&]() -> absl::Status {
    torch::NoGradGuard no_grad;
    model->eval();
    model->to(device);
    if (options.fold_bn) model->FoldBatchNorm();
    if (options.bfloat16) model->to(torch::kBFloat16);
    if (options.channels_last) {
      for (auto& p : model->parameters()) {
        if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
      }
    }
    for (auto& p : model->parameters()) p.set_requires_grad(false);
    return absl::OkStatus();
  }));
  auto servable = std::unique_ptr<ServableModel>(
      new ServableModel(std::move(model), options, device, std::move(metadata)));
  servable->ApplyThreads();
  return servable;
}

absl::StatusOr<std::unique_ptr<ServableModel>> ServableModel::CreateFromCheckpoint(
    const std::string& path, const ServeOptions& options) {
  ASSIGN_OR_RETURN(LoadedCheckpoint loaded, LoadCheckpoint(path));
  return Create(std::move(loaded.model), options, std::move(loaded.info.metadata));
}

void ServableModel::ApplyThreads() const {
  // OpenMP thread counts are per calling thread: set them on the executor thread itself.
  if (options_.intra_op_threads > 0 && at::get_num_threads() != options_.intra_op_threads) {
    at::set_num_threads(options_.intra_op_threads);
  }
}

absl::Status ServableModel::ValidateInput(const torch::Tensor& input) const {
  if (!input.defined()) return absl::InvalidArgumentError("input: tensor is undefined");
  if (input.dim() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("input: must have rank 4 (N x C x H x W), got rank ", input.dim()));
  }
  if (input.scalar_type() != torch::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("input: dtype must be float32, got ", c10::toString(input.scalar_type())));
  }
  if (input.size(1) != config_.in_channels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input: must have in_channels = ", config_.in_channels, " channels, got ", input.size(1)));
  }
  if (input.size(0) < 1 || input.size(2) < 1 || input.size(3) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("input: batch, height and width must be >= 1, got ", input.size(0), " x ",
                     input.size(2), " x ", input.size(3)));
  }
  return absl::OkStatus();
}

torch::Tensor ServableModel::Prepare(const torch::Tensor& input) const {
  torch::Tensor x = input.to(device_);
  if (options_.bfloat16) x = x.to(torch::kBFloat16);
  return options_.channels_last ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
}

absl::StatusOr<torch::Tensor> ServableModel::Forward(const torch::Tensor& input) {
  RETURN_IF_ERROR(ValidateInput(input));
  ApplyThreads();
  return CallTorch("forward", [&]() -> absl::StatusOr<torch::Tensor> {
    torch::InferenceMode inference_mode;
    torch::Tensor logits = model_->forward(Prepare(input));
    return logits.to(torch::kFloat32).contiguous();
  });
}

absl::StatusOr<UnetOutput> ServableModel::ForwardWithTaps(const torch::Tensor& input) {
  RETURN_IF_ERROR(ValidateInput(input));
  ApplyThreads();
  return CallTorch("forward", [&]() -> absl::StatusOr<UnetOutput> {
    torch::InferenceMode inference_mode;
    UnetOutput out = model_->ForwardWithTaps(Prepare(input));
    out.logits = out.logits.to(torch::kFloat32).contiguous();
    if (options_.bfloat16) {
      for (auto& tap : out.taps) tap.tensor = tap.tensor.to(torch::kFloat32);
    }
    return out;
  });
}

}  // namespace segserve::model
