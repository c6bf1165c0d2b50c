// File: tests/client/plot_test.cc — client/plot: PNGs of the requested size with every panel
// and line drawn, intervals as bands, bad figures refused, a missing driver reported as a
// status (no prompt, no exit), and concurrent renders serialised.
#include "client/plot/plot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <thread>
#include <vector>

#include "tests/client/png_pixels.h"
#include "tests/testing/server_process.h"

namespace segserve::plot {
namespace {

using segserve::testing::Area;
using segserve::testing::BandOver;
using segserve::testing::CountColour;
using segserve::testing::DecodePng;
using segserve::testing::Whole;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Series Line(int i, double offset) {
  Series s;
  s.label = "series " + std::to_string(i);
  s.colour = SeriesColour(i);
  s.marker = SeriesMarker(i);
  for (int x = 0; x <= 5; ++x) {
    s.x.push_back(x);
    s.y.push_back(0.9 - 0.1 * x - offset);
    s.low.push_back(s.y.back() - 0.05);
    s.high.push_back(s.y.back() + 0.05);
  }
  return s;
}

Figure TwoPanels() {
  Figure f;
  f.width = 900;
  f.height = 400;
  f.title = "two panels";
  for (int p = 0; p < 2; ++p) {
    Panel panel;
    panel.title = "panel " + std::to_string(p);
    panel.x_label = "x";
    panel.y_label = "y";
    panel.integer_x = true;
    panel.y_min = 0;
    panel.y_max = 1;
    panel.legend = p == 0 ? LegendPosition::kOutsideRight : LegendPosition::kNone;
    panel.series = {Line(0, 0.0), Line(1, 0.3)};
    f.panels.push_back(panel);
  }
  return f;
}

TEST(PlotTest, RendersEveryPanelAndLineAtTheRequestedSize) {
  auto rendered = Render(TwoPanels());
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  const cv::Mat image = DecodePng(rendered->png);
  ASSERT_FALSE(image.empty());
  EXPECT_EQ(image.cols, 900);
  EXPECT_EQ(image.rows, 400);
  ASSERT_EQ(rendered->plot_areas.size(), 2u);
  EXPECT_LT(rendered->plot_areas[0].x + rendered->plot_areas[0].width, rendered->plot_areas[1].x);
  for (int p = 0; p < 2; ++p) {
    const cv::Rect area = Area(rendered->plot_areas[p]);
    EXPECT_GT(area.width, 200);
    EXPECT_GT(area.height, 200);
    for (int s = 0; s < 2; ++s) {
      EXPECT_GT(CountColour(image, area, SeriesColour(s)), 300) << "panel " << p << " line " << s;
      EXPECT_GT(CountColour(image, area, BandOver(SeriesColour(s)), 6), 2000)
          << "band of panel " << p << " line " << s;
    }
  }
}

TEST(PlotTest, AMissingSeriesLeavesItsColourOut) {
  Figure f = TwoPanels();
  f.panels[1].series.pop_back();
  auto rendered = Render(f);
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  const cv::Mat image = DecodePng(rendered->png);
  const cv::Rect area = Area(rendered->plot_areas[1]);
  EXPECT_GT(CountColour(image, area, SeriesColour(0)), 300);
  EXPECT_EQ(CountColour(image, area, SeriesColour(1)), 0);
  EXPECT_EQ(CountColour(image, area, BandOver(SeriesColour(1)), 6), 0);
}

TEST(PlotTest, NaNPointsAndIntervalsAreNotDrawn) {
  Figure f = TwoPanels();
  f.panels.resize(1);
  f.panels[0].x_min = 0;
  f.panels[0].x_max = 5;
  Series& s = f.panels[0].series[0];
  for (size_t i = 0; i < s.x.size(); ++i) {
    s.y[i] = kNaN;
    s.low[i] = s.high[i] = kNaN;
  }
  // One seed at x = 2: a marker, no band.
  Series& t = f.panels[0].series[1];
  t.low[2] = t.high[2] = kNaN;
  auto rendered = Render(f);
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  const cv::Mat image = DecodePng(rendered->png);
  const cv::Rect area = Area(rendered->plot_areas[0]);
  EXPECT_EQ(CountColour(image, area, SeriesColour(0)), 0);
  EXPECT_EQ(CountColour(image, area, BandOver(SeriesColour(0)), 6), 0);
  // The band breaks around x = 2: nothing of it in the middle of the x range.
  const double x_per_unit = area.width / 5.0;
  const cv::Rect middle(area.x + static_cast<int>(1.6 * x_per_unit), area.y,
                        static_cast<int>(0.8 * x_per_unit), area.height);
  // (A few anti-aliased edge pixels of the line have the band's tint; a band has thousands.)
  EXPECT_LT(CountColour(image, middle, BandOver(SeriesColour(1)), 6), 40);
  EXPECT_GT(CountColour(image, middle, SeriesColour(1)), 20);  // the line and marker are there
}

TEST(PlotTest, CategoriesAndErrorBarsAndOutsideLegend) {
  Figure f;
  f.width = 700;
  f.height = 450;
  Panel panel;
  panel.x_categories = {"encoder.stem", "encoder.layer1", "decoder.block0"};
  panel.vertical_categories = true;
  panel.legend = LegendPosition::kOutsideRight;
  Series s = Line(2, 0);
  s.x = {0, 1, 2};
  s.y = {0.5, 0.6, 0.7};
  s.low = {0.4, kNaN, 0.6};
  s.high = {0.6, kNaN, 0.8};
  s.interval = IntervalStyle::kErrorBars;
  panel.series.push_back(s);
  f.panels.push_back(panel);
  auto rendered = Render(f);
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  const cv::Mat image = DecodePng(rendered->png);
  EXPECT_EQ(image.cols, 700);
  const cv::Rect area = Area(rendered->plot_areas[0]);
  EXPECT_LT(area.x + area.width, 700 - 100);  // room for the legend on the right
  EXPECT_GT(CountColour(image, area, SeriesColour(2)), 100);
  EXPECT_GT(CountColour(image, Whole(image), SeriesColour(2)),
            CountColour(image, area, SeriesColour(2)));  // the legend sample
}

TEST(PlotTest, WritePngReplacesTheFile) {
  segserve::testing::TempDir dir;
  const std::string path = dir.path() + "/f.png";
  ASSERT_TRUE(WritePng(TwoPanels(), path).ok());
  const cv::Mat image = cv::imread(path);
  EXPECT_EQ(image.cols, 900);
  EXPECT_EQ(image.rows, 400);
}

TEST(PlotTest, RefusesMalformedFigures) {
  Figure f = TwoPanels();
  f.panels[0].series[0].y.pop_back();
  EXPECT_EQ(RenderPng(f).status().code(), absl::StatusCode::kInvalidArgument);
  f = TwoPanels();
  f.panels[1].series[1].low.pop_back();
  EXPECT_EQ(RenderPng(f).status().code(), absl::StatusCode::kInvalidArgument);
  f = TwoPanels();
  f.width = 20;
  EXPECT_EQ(RenderPng(f).status().code(), absl::StatusCode::kInvalidArgument);
  f.width = 900;
  f.panels.clear();
  EXPECT_EQ(RenderPng(f).status().code(), absl::StatusCode::kInvalidArgument);
  f = TwoPanels();
  f.panels[0].series.assign(200, Line(0, 0));  // more than the colour map holds
  EXPECT_EQ(RenderPng(f).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PlotTest, WriteToAnUnwritablePathIsAStatus) {
  segserve::testing::TempDir dir;
  const std::string file = dir.path() + "/a-file";
  ASSERT_TRUE(WritePng(TwoPanels(), file).ok());
  EXPECT_FALSE(WritePng(TwoPanels(), file + "/f.png").ok());  // a file is not a directory
}

TEST(PlotTest, ConcurrentRendersAllSucceed) {
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&ok, t] {
      auto png = RenderPng(TwoPanels());
      ok[t] = png.ok() && DecodePng(*png).cols == 900;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_THAT(ok, ::testing::Each(1));
}

// PLplot asks on stdin for a device it cannot find and then exits; here that must be a status.
// Run in a fresh process (threadsafe death test style re-executes the binary): PLplot reads
// its driver directory once per process.
TEST(PlotDeathTest, MissingDriverIsFailedPreconditionNotAPromptOrExit) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("PLPLOT_DRV_DIR", "/nonexistent-plplot-drivers", 1);
        if (freopen("/dev/null", "r", stdin) == nullptr) _exit(3);
        auto png = RenderPng(TwoPanels());
        fprintf(stderr, "status: %s\n", png.status().ToString().c_str());
        _exit(png.status().code() == absl::StatusCode::kFailedPrecondition ? 7 : 1);
      },
      ::testing::ExitedWithCode(7), "plplot-driver-cairo");
}

}  // namespace
}  // namespace segserve::plot
