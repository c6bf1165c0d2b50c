// File: tests/model/test_util.h — helpers shared by the model tests: temp dirs, random
// BatchNorm statistics, and the Python reference outputs (tests/model/reference_unet.py).
#pragma once

#include <torch/torch.h>

#include <cstdlib>
#include <string>

#include "server/model/unet.h"

namespace segserve::model::testing {

// A fresh directory under the test temp dir, removed when the process exits.
std::string MakeTempDir();

// Gives every BatchNorm non-trivial statistics and affine parameters (deterministic per seed),
// so that folding and loading are actually exercised.
void RandomiseBatchNorm(Unet& model, uint64_t seed);

// Two models with identical weights.
Unet CopyOf(Unet& model);

// Runs `/usr/bin/python3 tests/model/reference_unet.py equivalence DIR` once per process.
// Returns the directory, or "" when Python with torch/torchvision is unavailable (`why` says
// why).
const std::string& PythonReferenceDir(std::string* why);

}  // namespace segserve::model::testing
