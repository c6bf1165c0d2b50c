// File: tests/client/susceptibility_plot_test.cc — `segctl susceptibility --plot`: Hellinger
// per layer, one line per model, the null dashed; decodes at its size with every model drawn.
#include "client/segctl/susceptibility_plot.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/client/png_pixels.h"
#include "tests/testing/server_process.h"

namespace segserve::segctl {
namespace {

using segserve::testing::CountColour;

const char* const kLayers[] = {
    "encoder.stem",   "encoder.layer1", "encoder.layer2", "encoder.layer3", "encoder.layer4",
    "decoder.block0", "decoder.block1", "decoder.block2", "decoder.block3", "decoder.block4"};

v1::SusceptibilityReport Report() {
  v1::SusceptibilityReport report;
  report.set_source_images(64);
  report.set_target_images(64);
  report.set_bins(16);
  for (int m = 0; m < 2; ++m) {
    auto* model = report.add_models();
    model->set_model_name(m == 0 ? "baseline" : "l1-pruned");
    model->set_model_version(1);
    int i = 0;
    for (const char* name : kLayers) {
      auto* layer = model->add_layers();
      layer->set_layer(name);
      layer->set_mean(0.1 + 0.04 * i + 0.1 * m);
      layer->set_null_mean(m == 0 ? 0.03 : -1);  // second model: null not computed
      ++i;
    }
  }
  return report;
}

TEST(SusceptibilityPlotTest, OneLinePerModelWithItsNullDashed) {
  auto figure = SusceptibilityFigure(Report());
  ASSERT_TRUE(figure.ok()) << figure.status();
  ASSERT_EQ(figure->panels.size(), 1u);
  const plot::Panel& panel = figure->panels[0];
  EXPECT_EQ(panel.x_categories.size(), 10u);
  ASSERT_EQ(panel.series.size(), 4u);
  EXPECT_EQ(panel.series[0].label, "baseline:1");
  EXPECT_TRUE(panel.series[1].dashed);
  EXPECT_DOUBLE_EQ(panel.series[1].y[3], 0.03);
  EXPECT_TRUE(std::isnan(panel.series[3].y[3]));  // -1: not computed, not drawn
}

TEST(SusceptibilityPlotTest, WritesAPngWithEveryModel) {
  segserve::testing::TempDir dir;
  const std::string path = dir.path() + "/s.png";
  ASSERT_TRUE(WriteSusceptibilityPlot(Report(), path).ok());
  const cv::Mat file = cv::imread(path);
  ASSERT_FALSE(file.empty());
  EXPECT_EQ(file.cols, 1100);
  EXPECT_EQ(file.rows, 620);

  auto rendered = plot::Render(*SusceptibilityFigure(Report()));
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  const cv::Mat image = segserve::testing::DecodePng(rendered->png);
  const cv::Rect area = segserve::testing::Area(rendered->plot_areas[0]);
  for (int m = 0; m < 2; ++m) {
    EXPECT_GT(CountColour(image, area, plot::SeriesColour(m)), 400) << "model " << m;
  }
}

TEST(SusceptibilityPlotTest, EmptyReportIsAnError) {
  EXPECT_EQ(SusceptibilityFigure(v1::SusceptibilityReport()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segserve::segctl
