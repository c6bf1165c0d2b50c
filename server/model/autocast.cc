#include "server/model/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace segserve::model {
namespace {

// LibTorch 2.4 replaced the per-backend switches with device-type arguments (the old names
// remain, deprecated, until they go).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool IsEnabled(at::DeviceType t) { return at::autocast::is_autocast_enabled(t); }
void SetEnabled(at::DeviceType t, bool on) { at::autocast::set_autocast_enabled(t, on); }
at::ScalarType GetDtype(at::DeviceType t) { return at::autocast::get_autocast_dtype(t); }
void SetDtype(at::DeviceType t, at::ScalarType d) { at::autocast::set_autocast_dtype(t, d); }
#else
bool IsEnabled(at::DeviceType t) {
  return t == at::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
void SetEnabled(at::DeviceType t, bool on) {
  if (t == at::kCUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
}
at::ScalarType GetDtype(at::DeviceType t) {
  return t == at::kCUDA ? at::autocast::get_autocast_gpu_dtype()
                        : at::autocast::get_autocast_cpu_dtype();
}
void SetDtype(at::DeviceType t, at::ScalarType d) {
  if (t == at::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(d);
  } else {
    at::autocast::set_autocast_cpu_dtype(d);
  }
}
#endif

}  // namespace

AutocastGuard::AutocastGuard(const torch::Device& device, at::ScalarType dtype)
    : type_(device.is_cuda() ? at::kCUDA : at::kCPU) {
  was_enabled_ = IsEnabled(type_);
  was_dtype_ = GetDtype(type_);
  SetDtype(type_, dtype);
  SetEnabled(type_, true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  // Casts of weights are cached while autocast is on; drop them when the outermost scope ends.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetEnabled(type_, was_enabled_);
  SetDtype(type_, was_dtype_);
}

}  // namespace segserve::model
