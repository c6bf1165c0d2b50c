#include "server/model_input/tiling.h"

#include <algorithm>
#include <cmath>

namespace segserve::model_input {
namespace {

std::vector<int> Starts(int size, int tile, double overlap) {
  if (size <= tile) return {0};
  const int step = std::max(1, static_cast<int>(std::floor(tile * (1.0 - overlap))));
  const int count = static_cast<int>(std::ceil(static_cast<double>(size - tile) / step)) + 1;
  std::vector<int> starts;
  starts.reserve(count);
  // Spread the tiles evenly so the first starts at 0 and the last ends at the border.
  for (int i = 0; i < count; ++i) {
    starts.push_back(static_cast<int>(
        std::lround(static_cast<double>(size - tile) * i / std::max(1, count - 1))));
  }
  return starts;
}

}  // namespace

TileGrid MakeTileGrid(int height, int width, int tile, double overlap) {
  TileGrid grid;
  grid.tile_height = std::min(tile, height);
  grid.tile_width = std::min(tile, width);
  for (int y : Starts(height, tile, overlap)) {
    for (int x : Starts(width, tile, overlap)) grid.origins.emplace_back(y, x);
  }
  return grid;
}

std::vector<float> GaussianImportance(int tile_height, int tile_width) {
  auto axis = [](int n) {
    std::vector<double> w(n);
    const double sigma = n / 8.0;
    const double centre = (n - 1) / 2.0;
    for (int i = 0; i < n; ++i) {
      const double d = (i - centre) / sigma;
      w[i] = std::exp(-0.5 * d * d);
    }
    return w;
  };
  const std::vector<double> wy = axis(tile_height), wx = axis(tile_width);
  std::vector<float> weights(static_cast<size_t>(tile_height) * tile_width);
  double max_weight = 0;
  for (int y = 0; y < tile_height; ++y) {
    for (int x = 0; x < tile_width; ++x) max_weight = std::max(max_weight, wy[y] * wx[x]);
  }
  // nnU-Net clips the smallest weights to the smallest non-zero one so borders count.
  const float floor_weight = 1e-3f;
  for (int y = 0; y < tile_height; ++y) {
    for (int x = 0; x < tile_width; ++x) {
      weights[static_cast<size_t>(y) * tile_width + x] =
          std::max(floor_weight, static_cast<float>(wy[y] * wx[x] / max_weight));
    }
  }
  return weights;
}

}  // namespace segserve::model_input
