// File: server/inference/tiling.h — the tiling geometry of the model-input module, under
// the names the inference code uses.
#pragma once

#include "server/model_input/tiling.h"

namespace segserve::inference {

using model_input::GaussianImportance;
using model_input::MakeTileGrid;
using model_input::TileGrid;

}  // namespace segserve::inference
