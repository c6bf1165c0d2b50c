// File: server/model/autocast.h — mixed precision (autocast) scoped to a block, on CPU or
// CUDA, for LibTorch 1.13 and 2.x alike: the one place that knows the two versions name the
// autocast switches differently (1.13: set_enabled / set_cpu_enabled; 2.x:
// set_autocast_enabled(device_type, ...)).
#pragma once

#include <torch/torch.h>

namespace segserve::model {

// While alive, eligible ops on `device`'s type run in `dtype` (bf16 or fp16) with fp32
// master weights; restores the previous state on destruction. Thread-local, like LibTorch's
// autocast state: construct it on the thread that runs the forward/backward pass.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, at::ScalarType dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  at::DeviceType type_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_;
};

}  // namespace segserve::model
