// File: server/model/state_dict.h — weight import: PyTorch state dicts saved with
// `torch.save(model.state_dict(), path)` (zip format, the default since PyTorch 1.6), read with
// LibTorch's pickle loader, and loaded into a Unet by key.
//
// Accepted files:
//  - a segmentation_models_pytorch `Unet(encoder_name="resnet18"|"resnet34")` state dict
//    (keys encoder.*, decoder.blocks.*, segmentation_head.*), or one of our own Unet;
//  - a torchvision resnet18/resnet34 state dict (conv1.weight, layer1.0.*, fc.*): use
//    TorchvisionToEncoderKeys() (or LoadTorchvisionEncoderFile), which prefixes "encoder." and
//    drops fc.*, then load with strict=false to fill the encoder only.
// Tensors are copied (and cast to the parameter's dtype) into the model's own storage.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/model/unet.h"

namespace segserve::model {

// Ordered (key, tensor) pairs as in the file.
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

struct LoadOptions {
  // true: every model key must be present and nothing else (InvalidArgument otherwise).
  // false: missing model keys keep their current values and unexpected keys are ignored
  // (both listed in the LoadReport) — e.g. to load a pretrained encoder alone.
  // Mis-shaped keys are an error in both modes.
  bool strict = true;
};

struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     // model keys not in the state dict (strict=false only)
  std::vector<std::string> unexpected;  // state-dict keys the model lacks (strict=false only)
};

// Parses the bytes of a torch.save'd dict of tensors. InvalidArgument when the bytes are not
// a zip-format pickle of a {str: Tensor} dict.
absl::StatusOr<StateDict> ParseStateDict(const std::string& bytes);
// ReadFile + ParseStateDict; NotFound when the file is absent.
absl::StatusOr<StateDict> ReadStateDictFile(const std::string& path);

// Copies `state_dict` into `model`'s parameters and buffers (num_batches_tracked included).
// Errors list the offending keys (at most 10 of each kind, then "... and N more") with
// expected and found shapes. Nothing is modified when an error is returned.
absl::StatusOr<LoadReport> LoadStateDict(Unet& model, const StateDict& state_dict,
                                         const LoadOptions& options = {});
absl::StatusOr<LoadReport> LoadStateDictFile(Unet& model, const std::string& path,
                                             const LoadOptions& options = {});

// torchvision ResNet keys -> smp encoder keys ("encoder." prefix; fc.* dropped).
StateDict TorchvisionToEncoderKeys(const StateDict& torchvision);
// Loads a torchvision ResNet state dict into the encoder; every encoder key must be present
// (InvalidArgument listing the missing ones otherwise), the decoder is left as it is.
absl::StatusOr<LoadReport> LoadTorchvisionEncoderFile(Unet& model, const std::string& path);

// The model's parameters and buffers, in registration order (smp's key order).
StateDict GetStateDict(torch::nn::Module& model);

// The bytes of `torch.save(state_dict, f)`: a zip-format pickle of a {str: Tensor} dict
// (tensors copied to the CPU and made contiguous) that Python's torch.load, and
// ParseStateDict, read back bit-exactly. (LibTorch's buffer, handed over without a copy.)
absl::StatusOr<std::vector<char>> SerializeStateDict(const StateDict& state_dict);

}  // namespace segserve::model
