// File: server/model_input/tiling.h — sliding-window tiles for images larger than a tile,
// and the Gaussian importance map used to blend overlapping logits (as nnU-Net does:
// sigma = tile/8, centre weighted most, borders never zero).
#pragma once

#include <vector>

#include "absl/status/statusor.h"

namespace segserve::model_input {

struct TileGrid {
  int tile_height = 0;  // min(tile, image height)
  int tile_width = 0;   // min(tile, image width)
  std::vector<std::pair<int, int>> origins;  // (y, x) of each tile's top-left corner
};

// Tiles covering a height x width image with at least `overlap` (0..0.75) of a tile shared
// between neighbours; the last tile of a row/column is aligned to the image border.
TileGrid MakeTileGrid(int height, int width, int tile, double overlap);

// tile_height x tile_width weights, row-major, maximum 1, minimum > 0.
std::vector<float> GaussianImportance(int tile_height, int tile_width);

}  // namespace segserve::model_input
