// File: server/model/torch_pickle.h — reads `torch.save(dict_of_tensors, path)` files (zip
// format, pickle protocol 2: PyTorch's defaults since 1.6) without Python.
//
// Why not torch::pickle_load: LibTorch 1.13's unpickler turns every collections.OrderedDict
// into None and lacks opcodes Python emits (SETITEM, POP), so it cannot read the state dicts
// users actually have (`model.state_dict()` is an OrderedDict). This is a small unpickler for
// exactly what a state dict contains: dicts/OrderedDicts, strings, numbers, tuples, lists and
// tensors (torch._utils._rebuild_tensor_v2 / _rebuild_parameter over typed storages). Any
// other Python class is refused — loading a file never runs or imports code.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace segserve::model {

// Reads a torch.save'd {str: Tensor} dict (e.g. a state dict); order as in the file; tensors
// on the CPU, whatever device they were saved from. InvalidArgument for anything else,
// naming what was found.
absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> ParseTorchSaveTensorDict(
    const std::string& bytes);

}  // namespace segserve::model
