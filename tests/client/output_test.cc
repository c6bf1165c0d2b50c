// segctl's tables: columns sized to content, sorted cross-domain columns, wrapping.
#include <sstream>

#include "absl/strings/str_split.h"
#include "client/lib/lifecycle.h"
#include "client/segctl/job_output.h"
#include "client/segctl/model_output.h"
#include "client/segctl/table.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace segserve::segctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(Table, ColumnsAreAsWideAsTheirWidestCell) {
  Table table({"A", "LONG HEADER", "N"});
  table.AlignRight(2);
  table.AddRow({"analysis", "x", "1"});
  table.AddRow({"a", "", "100"});
  std::ostringstream out;
  table.Print(out);
  EXPECT_THAT(Lines(out.str()), ElementsAre("A         LONG HEADER    N", "analysis  x              1",
                                            "a                      100"));
}

TEST(Table, WideTablesWrapIntoBlocksRepeatingTheKeyColumns) {
  std::vector<std::string> header = {"key"};
  for (int i = 0; i < 12; ++i) header.push_back("column" + std::to_string(i));
  Table table(header);
  std::vector<std::string> row = {"k1"};
  for (int i = 0; i < 12; ++i) row.push_back("0.1234");
  table.AddRow(row);
  std::ostringstream out;
  table.PrintWrapped(out, 50, 1);
  int blocks = 0;
  for (const std::string& line : Lines(out.str())) {
    EXPECT_LE(line.size(), 50u) << line;
    if (line.rfind("key", 0) == 0) ++blocks;
  }
  EXPECT_GE(blocks, 2);
  EXPECT_THAT(out.str(), HasSubstr("column11"));
}

v1::Job AnalysisJob() {
  v1::Job job;
  job.set_job_id("5e1c2a");
  job.set_kind(v1::JOB_KIND_ANALYSIS);
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  return job;
}

TEST(JobOutput, JobListKeepsKindAndStateApart) {
  v1::Job train;
  train.set_job_id("1");
  train.set_kind(v1::JOB_KIND_TRAIN);
  train.set_state(v1::JOB_STATE_RUNNING);
  train.mutable_progress()->set_epoch(3);
  train.mutable_progress()->set_epochs(50);
  std::ostringstream out;
  PrintJobTable(out, {AnalysisJob(), train});
  EXPECT_THAT(out.str(), Not(HasSubstr("analysisSUCCEEDED")));
  const auto lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 3u);
  // STATE starts in the same column on every line.
  const size_t state_column = lines[0].find("STATE");
  EXPECT_EQ(lines[1].find("SUCCEEDED"), state_column);
  EXPECT_EQ(lines[2].find("RUNNING"), state_column);
  EXPECT_THAT(lines[2], HasSubstr("epoch 3/50"));
}

v1::Job Sweep() {
  v1::Job job;
  job.set_job_id("sweep1");
  job.set_kind(v1::JOB_KIND_SWEEP);
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  for (int level = 0; level < 2; ++level) {
    auto* row = job.add_sweep();
    row->set_encoder(v1::ENCODER_RESNET18);
    row->set_prune_level(level);
    row->set_state(v1::JOB_STATE_SUCCEEDED);
    row->set_model_name("m");
    row->set_model_version(level + 1);
    for (const char* label : {"contrast:4", "brightness:1", "contrast:5", "saturation:5",
                              "brightness:10", "other-set", "brightness:2"}) {
      (*row->mutable_cross_domain_iou())[label] = 0.5;
    }
  }
  return job;
}

TEST(JobOutput, CrossDomainColumnsAreSortedByKindThenLevel) {
  EXPECT_THAT(SortedCrossDomainLabels(Sweep()),
              ElementsAre("brightness:1", "brightness:2", "brightness:10", "contrast:4",
                          "contrast:5", "saturation:5", "other-set"));
  std::ostringstream out;
  PrintSweepTable(out, Sweep(), 1000);
  const std::string header = Lines(out.str())[0];
  EXPECT_LT(header.find("brightness:10"), header.find("contrast:4"));
  EXPECT_LT(header.find("contrast:5"), header.find("saturation:5"));
}

TEST(JobOutput, SweepTableWrapsToTheTerminalWidth) {
  std::ostringstream out;
  PrintSweepTable(out, Sweep(), 60);
  for (const std::string& line : Lines(out.str())) EXPECT_LE(line.size(), 60u) << line;
  EXPECT_THAT(out.str(), HasSubstr("other-set"));
  EXPECT_THAT(out.str(), HasSubstr("m:2"));
}

TEST(JobOutput, DataSetJobsShowImagesWrittenAndEta) {
  v1::Job job;
  job.set_kind(v1::JOB_KIND_SYNTH);
  job.set_state(v1::JOB_STATE_RUNNING);
  job.mutable_progress()->set_step(120);
  job.mutable_progress()->set_steps(500);
  job.mutable_progress()->set_fraction(0.24);
  job.mutable_progress()->set_images_per_second(40);
  job.mutable_progress()->set_eta_seconds(9.5);
  EXPECT_EQ(ProgressLine(job), "RUNNING  images 120/500 (24%)  40.0 img/s  ETA 10 s");
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  job.mutable_progress()->set_step(500);
  job.mutable_progress()->set_fraction(1);
  EXPECT_EQ(ProgressLine(job), "SUCCEEDED  images 500/500 (100%)  40.0 img/s");
}

TEST(JobOutput, ParentsShowConfigurationsDoneAndALiveEta) {
  v1::Job job;
  job.set_kind(v1::JOB_KIND_EXPERIMENT);
  job.set_state(v1::JOB_STATE_RUNNING);
  for (int i = 0; i < 4; ++i) job.add_child_job_ids("job-" + std::to_string(i));
  // As stored (finished children only): the old form.
  job.mutable_progress()->set_fraction(0.25);
  EXPECT_THAT(ProgressLine(job), HasSubstr("25% of 4 configurations"));
  // Live, from the children's progress.
  job.mutable_progress()->set_step(1);
  job.mutable_progress()->set_steps(4);
  job.mutable_progress()->set_fraction(0.625);
  job.mutable_progress()->set_eta_seconds(119.2);
  EXPECT_THAT(ProgressLine(job), HasSubstr("RUNNING  1/4 configurations done  62%  ETA 120 s"));
}

// A training with TrainSpec.susceptibility shows each target's per-layer table, in order.
TEST(JobOutput, TrainingsShowTheirSusceptibilityPerTarget) {
  v1::Job job;
  job.set_job_id("job-1");
  job.set_kind(v1::JOB_KIND_TRAIN);
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  for (const char* target : {"contrast:5", "brightness:5"}) {
    v1::SusceptibilityReport& report = (*job.mutable_susceptibility())[target];
    report.set_source_images(8);
    report.set_target_images(8);
    auto* model = report.add_models();
    model->set_model_name("m");
    model->set_model_version(2);
    auto* layer = model->add_layers();
    layer->set_layer("encoder.stem");
    layer->set_channels(64);
    layer->set_mean(0.8125);
    layer->set_null_mean(0.25);
  }
  std::ostringstream out;
  PrintJob(out, job, 100);
  const std::string text = out.str();
  const size_t brightness = text.find("susceptibility to brightness:5: source images 8");
  const size_t contrast = text.find("susceptibility to contrast:5: source images 8");
  ASSERT_NE(brightness, std::string::npos) << text;
  ASSERT_NE(contrast, std::string::npos) << text;
  EXPECT_LT(brightness, contrast);
  EXPECT_THAT(text, HasSubstr("m:2"));
  EXPECT_THAT(text, HasSubstr("encoder.stem           64   0.812"));
  EXPECT_THAT(text, HasSubstr("0.250"));
}

TEST(ModelOutput, ListIsAColumnTableAndGetSortsAllMetrics) {
  v1::ListModelsResponse response;
  for (int version : {1, 2}) {
    auto* m = response.add_models();
    m->set_name("plasmodium-resnet18-l1");
    m->set_version(version);
    m->mutable_config()->set_encoder(v1::ENCODER_RESNET18);
    m->mutable_config()->set_skip_prune_level(1);
    m->mutable_config()->set_in_channels(3);
    m->mutable_config()->set_classes(3);
    (*m->mutable_metrics())["test_iou"] = 0.75;
    m->set_disk_bytes(57 * 1024 * 1024);
    for (int i = 0; i < 30; ++i) {
      (*m->mutable_metrics())["cross_domain_iou/brightness:" + std::to_string(i)] = 0.5;
    }
  }
  response.mutable_models(1)->add_aliases("l1-pruned");
  response.mutable_models(1)->set_state(v1::LOAD_STATE_LOADED);
  response.mutable_models(1)->set_precision("bf16");
  std::ostringstream out;
  PrintModelTable(out, response);
  const auto lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 3u);
  // Fits a 105-column terminal with a long name, a loaded bf16 state and every column.
  for (const std::string& line : lines) EXPECT_LE(line.size(), 105u) << line;
  EXPECT_THAT(lines[0], HasSubstr("TEST IoU"));
  EXPECT_THAT(lines[2], HasSubstr("0.7500"));
  EXPECT_THAT(lines[0], HasSubstr("SIZE"));
  EXPECT_THAT(lines[2], HasSubstr("57 MiB"));
  EXPECT_THAT(lines[2], HasSubstr("l1-pruned"));
  EXPECT_THAT(lines[2], HasSubstr("bf16"));
  EXPECT_THAT(lines[1], Not(HasSubstr("bf16")));
  EXPECT_THAT(lines[2], Not(HasSubstr("cross_domain")));

  std::ostringstream details;
  PrintModelDetails(details, response.models(0));
  const std::string text = details.str();
  EXPECT_LT(text.find("cross_domain_iou/brightness:0 "), text.find("cross_domain_iou/brightness:1 "));
  EXPECT_LT(text.find("cross_domain_iou/brightness:2 "), text.find("cross_domain_iou/brightness:10 "));
  EXPECT_LT(text.find("cross_domain_iou/brightness:29"), text.find("test_iou"));
}

TEST(Table, NaturalLessComparesDigitRunsAsNumbers) {
  EXPECT_TRUE(NaturalLess("brightness:2", "brightness:10"));
  EXPECT_FALSE(NaturalLess("brightness:10", "brightness:2"));
  EXPECT_TRUE(NaturalLess("a", "b"));
  EXPECT_TRUE(NaturalLess("x1", "x1y"));
  EXPECT_FALSE(NaturalLess("x01", "x1"));
  EXPECT_FALSE(NaturalLess("same", "same"));
}

}  // namespace
}  // namespace segserve::segctl

namespace segserve::client {
namespace {

TEST(HumanBytes, PicksAUnitThatKeepsTheNumberShort) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(219ll * 1024 * 1024), "219 MiB");
  EXPECT_EQ(HumanBytes(9ll << 30), "9.0 GiB");
}

}  // namespace
}  // namespace segserve::client
