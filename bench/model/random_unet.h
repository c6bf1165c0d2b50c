// File: bench/model/random_unet.h — U-nets with random but realistic weights for benchmarks
// and the GPU check: He-normal convolutions, BatchNorm statistics calibrated on random
// inputs so activations are O(1) as in a trained net (as tests/model/reference_unet.py does).
#pragma once

#include "server/model/unet.h"

namespace segserve::bench {

// Re-initialises `model`'s weights and calibrates its BatchNorm statistics; leaves it in eval
// mode. Deterministic for a given torch::manual_seed.
void Calibrate(model::Unet& model);

// An independent copy (same config and state dict) in eval mode; exits on failure.
model::Unet CopyOf(model::Unet& model);

}  // namespace segserve::bench
