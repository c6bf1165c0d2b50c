// File: tests/client/png_pixels.h — checks on rendered PNG figures: decode with OpenCV and
// count the pixels of a colour inside a region, so a test fails when a panel or a line is
// missing.
#pragma once

#include <cstdlib>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "client/plot/plot.h"

namespace segserve::testing {

inline cv::Mat DecodePng(const std::string& bytes) {
  const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  return cv::imdecode(buffer, cv::IMREAD_COLOR);
}

// Pixels in `region` within `tolerance` (per channel) of `colour`. OpenCV stores BGR.
inline int CountColour(const cv::Mat& image, const cv::Rect& region, plot::Colour colour,
                       int tolerance = 12) {
  int count = 0;
  const cv::Rect r = region & cv::Rect(0, 0, image.cols, image.rows);
  for (int y = r.y; y < r.y + r.height; ++y) {
    const cv::Vec3b* row = image.ptr<cv::Vec3b>(y);
    for (int x = r.x; x < r.x + r.width; ++x) {
      const cv::Vec3b& p = row[x];
      if (std::abs(p[2] - colour.r) <= tolerance && std::abs(p[1] - colour.g) <= tolerance &&
          std::abs(p[0] - colour.b) <= tolerance) {
        ++count;
      }
    }
  }
  return count;
}

inline cv::Rect Area(const plot::PixelRect& r) { return cv::Rect(r.x, r.y, r.width, r.height); }

inline cv::Rect Whole(const cv::Mat& image) { return cv::Rect(0, 0, image.cols, image.rows); }

// What a translucent band of `colour` looks like over the white background.
inline plot::Colour BandOver(plot::Colour c, double alpha = plot::kBandAlpha) {
  auto blend = [alpha](int v) { return static_cast<uint8_t>(alpha * v + (1 - alpha) * 255 + 0.5); };
  return {blend(c.r), blend(c.g), blend(c.b)};
}

}  // namespace segserve::testing
