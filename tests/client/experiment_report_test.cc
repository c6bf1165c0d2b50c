// File: tests/client/experiment_report_test.cc — the Markdown of an experiment report: set-up,
// findings, tables with mean ± half-width (n=1 and missing cells marked), paired lines.
#include "client/segctl/experiment_report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace segserve::segctl {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json S(double mean, double half, int n) {
  return {{"n", n}, {"mean", mean}, {"half_width", half}, {"interval", n >= 2}};
}

json Report() {
  json cell0 = {{"encoder", "resnet18"},
                {"prune_level", 0},
                {"seeds", {1, 2}},
                {"test_iou", S(0.8123, 0.0625, 2)},
                {"test_class_iou", {{"parasite", S(0.8, 0.05, 2)}}},
                {"shift_iou", {{"brightness", {{"1", S(0.7, 0.1, 2)}, {"5", S(0.2, 0.1, 2)}}}}},
                {"shift_mean", {{"brightness", S(0.45, 0.1, 2)}}},
                {"retained", {{"brightness", S(0.55, 0.1, 2)}}},
                {"shift_mean_all", S(0.45, 0.1, 2)},
                {"retained_all", S(0.55, 0.1, 2)}};
  json cell1 = cell0;
  cell1["prune_level"] = 1;
  cell1["test_iou"] = S(0.7, 0, 1);
  cell1["shift_iou"]["brightness"]["5"] = S(0, 0, 0);
  json paired = {
      {"encoder", "resnet18"},
      {"prune_level", 1},
      {"test_iou",
       {{"pairs", 2}, {"better", 0}, {"mean", -0.11}, {"half_width", 0.01}, {"interval", true}}},
      {"shift_mean",
       {{"brightness",
         {{"pairs", 2}, {"better", 2}, {"mean", 0.02}, {"half_width", 0.03}, {"interval", true}}}}},
      {"shift_mean_all",
       {{"pairs", 2}, {"better", 2}, {"mean", 0.02}, {"half_width", 0.03}, {"interval", true}}}};
  return {{"job_id", "job-e"},
          {"method", "the method"},
          {"spec",
           {{"encoders", {"resnet18"}},
            {"prune_levels", {0, 1}},
            {"seeds", {1, 2}},
            {"shifts", {"brightness"}},
            {"shift_levels", {1, 5}},
            {"preset", ""},
            {"train", {{"dataset", "d"}, {"epochs", 3}, {"batch_size", 4}}}}},
          {"children", {{"total", 4}, {"succeeded", 4}, {"failed", 0}, {"cancelled", 0}}},
          {"cells", {cell0, cell1}},
          {"paired_vs_l0", {paired}},
          {"findings", {{{"question", "RQ2"}, {"text", "RQ2 (resnet18) L1 - L0 ..."}}}},
          {"models",
           {{{"job_id", "job-a"},
             {"encoder", "resnet18"},
             {"prune_level", 0},
             {"seed", 1},
             {"state", "SUCCEEDED"},
             {"model_name", "d-resnet18-l0-s1"},
             {"model_version", 1},
             {"test_iou", 0.81}}}}};
}

TEST(ExperimentMarkdownTest, SetUpFindingsTablesAndPairedLines) {
  const std::string md = RenderExperimentMarkdown(Report());
  EXPECT_THAT(md, HasSubstr("# Experiment job-e"));
  EXPECT_THAT(md, HasSubstr("- Data set: `d`"));
  EXPECT_THAT(md, HasSubstr("prune levels: 0, 1; seeds: 1, 2"));
  EXPECT_THAT(md, HasSubstr("- Shifts: brightness at levels 1, 5"));
  EXPECT_THAT(md, HasSubstr("- Trainings: 4 of 4 succeeded"));
  EXPECT_THAT(md, HasSubstr("## Findings\n\n- RQ2 (resnet18) L1 - L0 ..."));
  EXPECT_THAT(md,
              HasSubstr("| encoder | level | seeds | test IoU (foreground mean) | IoU parasite |"));
  EXPECT_THAT(md, HasSubstr("| resnet18 | L0 | 2 | 0.812 ± 0.062 | 0.800 ± 0.050 |"));
  EXPECT_THAT(md, HasSubstr("| resnet18 | L1 | 2 | 0.700 (n=1) |"));
  EXPECT_THAT(md, HasSubstr("## IoU under brightness shift"));
  EXPECT_THAT(md,
              HasSubstr("| resnet18 | L1 | 0.700 ± 0.100 | – | 0.450 ± 0.100 | 0.550 ± 0.100 |"));
  EXPECT_THAT(md, HasSubstr("- resnet18 L1 - L0: in-domain -0.110 ± 0.010 (0/2 better); brightness "
                            "mean +0.020 ± 0.030 (2/2 better); all shifts +0.020 ± 0.030 (2/2 "
                            "better)"));
  EXPECT_THAT(
      md, HasSubstr("| job-a | resnet18 | L0 | 1 | SUCCEEDED | d-resnet18-l0-s1 v1 | 0.8100 |"));
  EXPECT_THAT(md, HasSubstr("## Method\n\nthe method"));
}

TEST(ExperimentMarkdownTest, Bf16CheckGetsItsTableAndColumn) {
  json report = Report();
  EXPECT_THAT(RenderExperimentMarkdown(report), ::testing::Not(HasSubstr("bf16")));
  report["cells"][0]["test_iou_bf16"] = S(0.8101, 0.06, 2);
  report["cells"][0]["bf16_minus_fp32"] = {
      {"pairs", 2}, {"better", 1}, {"mean", -0.002}, {"half_width", 0.004}, {"interval", true}};
  report["cells"][0]["bf16_max_drop"] = 0.0042;
  report["models"][0]["test_iou_bf16"] = 0.8093;
  const std::string md = RenderExperimentMarkdown(report);
  EXPECT_THAT(md, HasSubstr("## Served in bf16 (the same models, test split)"));
  EXPECT_THAT(md, HasSubstr("| resnet18 | L0 | 0.812 ± 0.062 | 0.810 ± 0.060 | -0.002 ± 0.004 "
                            "(1/2 better) | 0.0042 |"));
  EXPECT_THAT(md, HasSubstr("| test IoU | test IoU bf16 |"));
  EXPECT_THAT(md, HasSubstr("| d-resnet18-l0-s1 v1 | 0.8100 | 0.8093 |"));
}

TEST(ExperimentMarkdownTest, EmptyReportStillRenders) {
  const std::string md = RenderExperimentMarkdown(json::object());
  EXPECT_THAT(md, HasSubstr("# Experiment"));
  EXPECT_THAT(md, HasSubstr("## Models"));
}

}  // namespace
}  // namespace segserve::segctl
