// File: server/model_input/luma.h — ITU-R BT.601 luma, the one definition of "gray" for
// every place that turns colour into brightness: model inputs (RGB(A) image to a gray
// model), data shifts (saturation), augmentation (contrast around the mean luma).
// Header-only and dependency-free, so that server/data (below this module) can use it too.
#pragma once

namespace segserve::model_input {

inline constexpr float kLumaR = 0.299f;
inline constexpr float kLumaG = 0.587f;
inline constexpr float kLumaB = 0.114f;

template <typename T>
constexpr T Luma(T r, T g, T b) {
  return static_cast<T>(kLumaR) * r + static_cast<T>(kLumaG) * g + static_cast<T>(kLumaB) * b;
}

}  // namespace segserve::model_input
