// File: tests/client/experiment_figures_test.cc — the experiment report's PNG figures from a
// report fixture (2 prune levels x 2 seeds x 3 shift kinds x 2 levels, one n=1 cell and one
// missing cell): the files exist, decode, have their sizes and draw every panel and line;
// n=1 has no interval, a missing cell is not drawn as 0; per-layer Hellinger only with data.
#include "client/segctl/experiment_figures.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "tests/client/png_pixels.h"
#include "tests/testing/server_process.h"

namespace segserve::segctl {
namespace {

using nlohmann::json;
using segserve::testing::Area;
using segserve::testing::BandOver;
using segserve::testing::CountColour;
using segserve::testing::DecodePng;
using segserve::testing::Whole;
using ::testing::HasSubstr;

// A summary as server/experiment/stats.cc writes it.
json S(double mean, double half, int n) {
  return {{"n", n},
          {"mean", mean},
          {"sd", half},
          {"half_width", half},
          {"ci95_low", mean - half},
          {"ci95_high", mean + half},
          {"interval", n >= 2}};
}

const char* const kKinds[] = {"brightness", "contrast", "saturation"};

json Cell(int level, double base) {
  json shift = json::object();
  for (const char* kind : kKinds) {
    shift[kind] = {{"1", S(base - 0.2, 0.05, 2)}, {"3", S(base - 0.5, 0.08, 2)}};
  }
  return {{"encoder", "resnet18"},        {"prune_level", level}, {"seeds", {1, 2}},
          {"test_iou", S(base, 0.03, 2)}, {"shift_iou", shift},   {"shift_mean", json::object()},
          {"retained", json::object()}};
}

json Report() {
  json l0 = Cell(0, 0.9);
  json l1 = Cell(1, 0.8);
  l1["shift_iou"]["brightness"]["1"] = S(0.55, 0, 1);  // one seed: no interval
  l1["shift_iou"]["contrast"]["3"] = S(0, 0, 0);       // no data
  return {{"job_id", "job-fig"},
          {"spec",
           {{"encoders", {"resnet18"}},
            {"prune_levels", {0, 1}},
            {"seeds", {1, 2}},
            {"shifts", {"brightness", "contrast", "saturation"}},
            {"shift_levels", {1, 3}},
            {"train", {{"dataset", "d"}}}}},
          {"cells", {l0, l1}}};
}

json Susceptibility() {
  json entries = json::array();
  for (int level : {0, 1}) {
    json layers = json::array();
    int i = 0;
    for (const char* name :
         {"encoder.stem", "encoder.layer1", "encoder.layer2", "decoder.block0", "decoder.block1"}) {
      layers.push_back({{"layer", name},
                        {"hellinger", S(0.1 + 0.05 * i + 0.1 * level, 0.02, 2)},
                        {"null", S(0.03, 0.01, 2)}});
      ++i;
    }
    entries.push_back({{"encoder", "resnet18"},
                       {"prune_level", level},
                       {"target", "brightness:3"},
                       {"layers", layers}});
  }
  return entries;
}

TEST(ExperimentFiguresTest, IouVsShiftHasAPanelPerKindAndALinePerLevel) {
  const auto figure = IouVsShiftFigure(Report());
  ASSERT_TRUE(figure.has_value());
  ASSERT_EQ(figure->panels.size(), 3u);
  EXPECT_EQ(figure->panels[1].title, "contrast shift");
  EXPECT_EQ(figure->panels[0].x_label, "shift level");
  EXPECT_EQ(figure->panels[0].y_label, "mean foreground IoU");
  ASSERT_EQ(figure->panels[0].series.size(), 2u);
  const plot::Series& l1_brightness = figure->panels[0].series[1];
  EXPECT_EQ(l1_brightness.label, "L1");
  EXPECT_THAT(l1_brightness.x, ::testing::ElementsAre(0, 1, 3));
  EXPECT_DOUBLE_EQ(l1_brightness.y[0], 0.8);  // level 0: in-domain test IoU
  EXPECT_DOUBLE_EQ(l1_brightness.y[1], 0.55);
  EXPECT_TRUE(std::isnan(l1_brightness.low[1]));  // n=1: no band
  EXPECT_DOUBLE_EQ(l1_brightness.low[2], 0.3 - 0.08);
  const plot::Series& l1_contrast = figure->panels[1].series[1];
  EXPECT_TRUE(std::isnan(l1_contrast.y[2]));  // missing: not 0
}

TEST(ExperimentFiguresTest, SeveralEncodersAreNamedInTheLegend) {
  json report = Report();
  report["spec"]["encoders"] = {"resnet18", "resnet34"};
  const auto figure = IouVsShiftFigure(report);
  ASSERT_TRUE(figure.has_value());
  EXPECT_EQ(figure->panels[0].series[0].label, "resnet18 L0");
  // resnet34 has no cells: its lines are left out rather than drawn empty or at 0.
  EXPECT_EQ(figure->panels[0].series.size(), 2u);
  report["cells"].push_back(report["cells"][0]);
  report["cells"][2]["encoder"] = "resnet34";
  const auto with_34 = IouVsShiftFigure(report);
  ASSERT_EQ(with_34->panels[0].series.size(), 3u);
  EXPECT_EQ(with_34->panels[0].series[2].label, "resnet34 L0");
  EXPECT_TRUE(with_34->panels[0].series[2].dashed);
  EXPECT_EQ(with_34->panels[0].series[2].colour, with_34->panels[0].series[0].colour);
}

TEST(ExperimentFiguresTest, WritesDecodablePngsWithEveryPanelAndLine) {
  segserve::testing::TempDir dir;
  auto written = WriteExperimentFigures(Report(), dir.path());
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_EQ(written->figures.size(), 2u);
  EXPECT_EQ(written->figures[0].file, "iou_vs_shift.png");
  EXPECT_EQ(written->figures[1].file, "in_domain_iou.png");
  ASSERT_EQ(written->notes.size(), 1u);
  EXPECT_THAT(written->notes[0], HasSubstr("hellinger_per_layer.png` not drawn"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/hellinger_per_layer.png"));

  const cv::Mat shift = cv::imread(dir.path() + "/iou_vs_shift.png");
  ASSERT_FALSE(shift.empty());
  EXPECT_EQ(shift.cols, 3 * 380 + 180);
  EXPECT_EQ(shift.rows, 440);
  const cv::Mat in_domain = cv::imread(dir.path() + "/in_domain_iou.png");
  ASSERT_FALSE(in_domain.empty());
  EXPECT_EQ(in_domain.cols, 640);
  EXPECT_EQ(in_domain.rows, 480);
}

TEST(ExperimentFiguresTest, EveryShiftPanelDrawsEveryLevelWithItsBand) {
  auto rendered = plot::Render(*IouVsShiftFigure(Report()));
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  const cv::Mat image = DecodePng(rendered->png);
  ASSERT_EQ(rendered->plot_areas.size(), 3u);
  for (int panel = 0; panel < 3; ++panel) {
    const cv::Rect area = Area(rendered->plot_areas[panel]);
    for (int line = 0; line < 2; ++line) {
      EXPECT_GT(CountColour(image, area, plot::SeriesColour(line)), 150)
          << "panel " << panel << " line " << line;
      EXPECT_GT(CountColour(image, area, BandOver(plot::SeriesColour(line)), 6), 300)
          << "band, panel " << panel << " line " << line;
    }
  }
}

TEST(ExperimentFiguresTest, InDomainDrawsErrorBarsPerLevel) {
  auto rendered = plot::Render(*InDomainIouFigure(Report()));
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  const cv::Mat image = DecodePng(rendered->png);
  ASSERT_EQ(rendered->plot_areas.size(), 1u);
  const cv::Rect area = Area(rendered->plot_areas[0]);
  // Two levels: points at 1/4 and 3/4 of the width, each with a bar.
  for (double at : {0.25, 0.75}) {
    const cv::Rect column(area.x + static_cast<int>(at * area.width) - 6, area.y, 12, area.height);
    EXPECT_GT(CountColour(image, column, plot::SeriesColour(0)), 20) << "level at " << at;
  }
}

TEST(ExperimentFiguresTest, HellingerPerLayerDrawnWhenTheReportCarriesIt) {
  json report = Report();
  EXPECT_FALSE(HellingerPerLayerFigure(report).has_value());
  report["susceptibility"] = Susceptibility();
  const auto figure = HellingerPerLayerFigure(report);
  ASSERT_TRUE(figure.has_value());
  ASSERT_EQ(figure->panels.size(), 1u);
  EXPECT_EQ(figure->panels[0].x_categories.size(), 5u);
  ASSERT_EQ(figure->panels[0].series.size(), 4u);  // L0, its null, L1, its null
  EXPECT_TRUE(figure->panels[0].series[1].dashed);

  segserve::testing::TempDir dir;
  auto written = WriteExperimentFigures(report, dir.path());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->figures.size(), 3u);
  EXPECT_TRUE(written->notes.empty());
  EXPECT_FALSE(cv::imread(dir.path() + "/hellinger_per_layer.png").empty());
  auto rendered = plot::Render(*figure);
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  const cv::Mat image = DecodePng(rendered->png);
  const cv::Rect area = Area(rendered->plot_areas[0]);
  for (int line = 0; line < 2; ++line) {
    EXPECT_GT(CountColour(image, area, plot::SeriesColour(line)), 250) << "line " << line;
    EXPECT_GT(CountColour(image, area, BandOver(plot::SeriesColour(line)), 6), 300);
  }
}

TEST(ExperimentFiguresTest, ReportWithoutResultsDrawsNothing) {
  json report = Report();
  report["cells"] = json::array();
  EXPECT_FALSE(IouVsShiftFigure(report).has_value());
  EXPECT_FALSE(InDomainIouFigure(report).has_value());
  segserve::testing::TempDir dir;
  auto written = WriteExperimentFigures(report, dir.path());
  ASSERT_TRUE(written.ok());
  EXPECT_TRUE(written->figures.empty());
  EXPECT_EQ(written->notes.size(), 3u);
}

TEST(ExperimentFiguresTest, MarkdownLinksTheFiguresAndSaysWhatIsMissing) {
  FiguresWritten figures;
  figures.figures.push_back({"iou_vs_shift.png", "IoU against shift level."});
  figures.notes.push_back("`hellinger_per_layer.png` not drawn: no data.");
  const std::string md = RenderExperimentMarkdown(Report(), figures);
  EXPECT_THAT(md, HasSubstr("## Figures\n\n![iou_vs_shift.png](iou_vs_shift.png)\n\nIoU against "
                            "shift level.\n\n- `hellinger_per_layer.png` not drawn: no data.\n"));
  EXPECT_THAT(RenderExperimentMarkdown(Report()), ::testing::Not(HasSubstr("## Figures")));
}

}  // namespace
}  // namespace segserve::segctl
