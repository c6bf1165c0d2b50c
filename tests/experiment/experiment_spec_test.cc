// File: tests/experiment/experiment_spec_test.cc — presets, validation naming the field, and
// expansion of the grid into TRAIN child specs.
#include "server/experiment/experiment_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace segserve::experiment {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ExperimentSpec Small() {
  ExperimentSpec spec;
  spec.train.dataset = "plasmodium";
  spec.encoders = {"resnet18"};
  spec.prune_levels = {0, 1};
  spec.seeds = {1, 2};
  spec.shifts = {"brightness", "contrast"};
  spec.shift_levels = {1, 3, 5};
  return spec;
}

void ExpectInvalid(const ExperimentSpec& spec, const std::string& field, int max = 64) {
  absl::Status s = ValidateExperimentSpec(spec, max);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(field));
}

TEST(ExperimentSpecTest, ValidSpecExpandsIntoOneChildPerEncoderLevelAndSeed) {
  ExperimentSpec spec = Small();
  ASSERT_TRUE(ValidateExperimentSpec(spec, 64).ok());
  auto children = ExpandExperiment(spec);
  ASSERT_EQ(children.size(), 4u);
  EXPECT_EQ(children[0].prune_level, 0);
  EXPECT_EQ(children[0].seed, 1u);
  EXPECT_EQ(children[1].seed, 2u);
  EXPECT_EQ(children[3].prune_level, 1);
  EXPECT_EQ(children[3].model_name, "plasmodium-resnet18-l1-s2");
  ASSERT_EQ(children[0].cross_domain.size(), 6u);
  EXPECT_EQ(children[0].cross_domain[0].shift, "brightness:1");
  EXPECT_EQ(children[0].cross_domain[0].label, "brightness:1");
  EXPECT_EQ(children[0].cross_domain[5].shift, "contrast:5");
}

TEST(ExperimentSpecTest, BadSpecsNameTheField) {
  ExperimentSpec s = Small();
  s.seeds.clear();
  ExpectInvalid(s, "spec.seeds");
  s = Small();
  s.shifts = {"brightness", "blur"};
  ExpectInvalid(s, "spec.shifts[1]: unknown shift kind 'blur'");
  s = Small();
  s.shift_levels = {1, 6};
  ExpectInvalid(s, "spec.shift_levels[1]: must be 1..5, got 6");
  s = Small();
  s.shift_levels = {0};
  ExpectInvalid(s, "spec.shift_levels[0]");
  s = Small();
  s.prune_levels.clear();
  ExpectInvalid(s, "grid is empty");
  s = Small();
  s.encoders.clear();
  ExpectInvalid(s, "spec.encoders");
  s = Small();
  s.seeds = {1, 1};
  ExpectInvalid(s, "spec.seeds[1]: duplicate");
  s = Small();
  s.prune_levels = {5};
  ExpectInvalid(s, "spec.prune_levels[0]: must be 0..4");
  s = Small();
  s.shift_levels.clear();
  ExpectInvalid(s, "spec.shift_levels");
  s = Small();
  s.train.dataset.clear();
  ExpectInvalid(s, "spec.dataset");
}

TEST(ExperimentSpecTest, GridOverTheQueueLimitIsInvalidNamingTheLimit) {
  ExperimentSpec s = Small();  // 4 trainings
  ExpectInvalid(s, "max_queued_jobs=3", 3);
  EXPECT_TRUE(ValidateExperimentSpec(s, 4).ok());
}

TEST(ExperimentSpecTest, PresetsFillOnlyWhatIsLeftEmpty) {
  ExperimentSpec paper;
  paper.preset = "paper";
  paper.train.dataset = "d";
  ASSERT_TRUE(ApplyPreset(paper, /*epochs_set=*/false).ok());
  EXPECT_THAT(paper.encoders, ElementsAre("resnet18", "resnet34"));
  EXPECT_THAT(paper.prune_levels, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(paper.seeds, ElementsAre(1, 2, 3));
  EXPECT_THAT(paper.shifts, ElementsAre("brightness", "contrast", "saturation"));
  EXPECT_THAT(paper.shift_levels, ElementsAre(1, 2, 3, 4, 5));
  EXPECT_EQ(paper.train.epochs, 50);
  EXPECT_TRUE(ValidateExperimentSpec(paper, 64).ok());

  ExperimentSpec quick;
  quick.preset = "quick";
  quick.train.dataset = "d";
  quick.seeds = {7, 8, 9};
  quick.train.epochs = 2;
  ASSERT_TRUE(ApplyPreset(quick, /*epochs_set=*/true).ok());
  EXPECT_THAT(quick.encoders, ElementsAre("resnet18"));
  EXPECT_THAT(quick.prune_levels, ElementsAre(0, 1));
  EXPECT_THAT(quick.seeds, ElementsAre(7, 8, 9));
  EXPECT_EQ(quick.train.epochs, 2);
  // What quick fills in itself: 3 seeds (an interval needs them), 8 epochs.
  ExperimentSpec bare_quick;
  bare_quick.preset = "quick";
  bare_quick.train.dataset = "d";
  ASSERT_TRUE(ApplyPreset(bare_quick, /*epochs_set=*/false).ok());
  EXPECT_THAT(bare_quick.seeds, ElementsAre(1, 2, 3));
  EXPECT_EQ(bare_quick.train.epochs, 8);
  EXPECT_THAT(bare_quick.shift_levels, ElementsAre(1, 2, 3, 4, 5));

  ExperimentSpec bad;
  bad.preset = "huge";
  EXPECT_THAT(std::string(ApplyPreset(bad, false).message()), HasSubstr("spec.preset"));
}

TEST(ExperimentSpecTest, PresetsLeaveSaturationOutForGrayDataSets) {
  ExperimentSpec mr;
  mr.preset = "quick";
  mr.train.dataset = "mr";
  ASSERT_TRUE(ApplyPreset(mr, /*epochs_set=*/false, /*channels=*/1).ok());
  EXPECT_THAT(mr.shifts, ElementsAre("brightness", "contrast"));
  EXPECT_THAT(mr.shift_levels, ElementsAre(1, 2, 3, 4, 5));

  ExperimentSpec explicit_kinds;
  explicit_kinds.preset = "quick";
  explicit_kinds.shifts = {"saturation"};  // an explicit field wins; the converter refuses it
  ASSERT_TRUE(ApplyPreset(explicit_kinds, false, 1).ok());
  EXPECT_THAT(explicit_kinds.shifts, ElementsAre("saturation"));
}

TEST(ExperimentSpecTest, JsonRoundTrips) {
  ExperimentSpec spec = Small();
  spec.preset = "quick";
  spec.train.epochs = 7;
  auto back = ExperimentSpecFromJson(ExperimentSpecToJson(spec));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->preset, "quick");
  EXPECT_EQ(back->encoders, spec.encoders);
  EXPECT_EQ(back->prune_levels, spec.prune_levels);
  EXPECT_EQ(back->seeds, spec.seeds);
  EXPECT_EQ(back->shifts, spec.shifts);
  EXPECT_EQ(back->shift_levels, spec.shift_levels);
  EXPECT_EQ(back->train.dataset, "plasmodium");
  EXPECT_EQ(back->train.epochs, 7);
  EXPECT_FALSE(ExperimentSpecFromJson(nlohmann::json::array()).ok());
}

TEST(ExperimentSpecTest, SusceptibilityDefaultsToTheMildestLevelOfAtLeastTwoOfEachShift) {
  ExperimentSpec spec = Small();  // brightness, contrast at 1, 3, 5
  ApplySusceptibilityDefault(spec);
  ASSERT_TRUE(spec.susceptibility.has_value());
  EXPECT_THAT(spec.susceptibility->targets, ElementsAre("brightness:3", "contrast:3"));
  EXPECT_EQ(spec.susceptibility->images, training::kDefaultSusceptibilityImages);

  ExperimentSpec only_mild = Small();  // no level of at least 2: the strongest there is
  only_mild.shift_levels = {1};
  ApplySusceptibilityDefault(only_mild);
  EXPECT_THAT(only_mild.susceptibility->targets, ElementsAre("brightness:1", "contrast:1"));
  ExperimentSpec ends = Small();  // 1 and 5: 5
  ends.shift_levels = {5, 1};
  ApplySusceptibilityDefault(ends);
  EXPECT_THAT(ends.susceptibility->targets, ElementsAre("brightness:5", "contrast:5"));

  ExperimentSpec quick;  // levels 1..5: 2
  quick.preset = "quick";
  quick.train.dataset = "d";
  ASSERT_TRUE(ApplyPreset(quick, false).ok());
  ApplySusceptibilityDefault(quick);
  EXPECT_THAT(quick.susceptibility->targets,
              ElementsAre("brightness:2", "contrast:2", "saturation:2"));

  ExperimentSpec paper;  // the paper preset adds the strongest level
  paper.preset = "paper";
  paper.train.dataset = "d";
  ASSERT_TRUE(ApplyPreset(paper, false, /*channels=*/1).ok());
  ApplySusceptibilityDefault(paper);
  EXPECT_THAT(paper.susceptibility->targets,
              ElementsAre("brightness:2", "brightness:5", "contrast:2", "contrast:5"));

  ExperimentSpec in_domain = Small();  // no shifts: nothing to analyse
  in_domain.shifts.clear();
  in_domain.shift_levels.clear();
  ApplySusceptibilityDefault(in_domain);
  EXPECT_TRUE(in_domain.susceptibility->targets.empty());

  ExperimentSpec chosen = Small();  // an explicit choice, none included, is kept
  chosen.susceptibility = training::SusceptibilitySpec{};
  ApplySusceptibilityDefault(chosen);
  EXPECT_TRUE(chosen.susceptibility->targets.empty());
  EXPECT_TRUE(ExpandExperiment(chosen)[0].susceptibility.targets.empty());

  chosen.susceptibility = training::SusceptibilitySpec{{"saturation:2"}, 16};
  ASSERT_TRUE(ValidateExperimentSpec(chosen, 64).ok());
  for (const auto& child : ExpandExperiment(chosen)) {
    EXPECT_THAT(child.susceptibility.targets, ElementsAre("saturation:2"));
    EXPECT_EQ(child.susceptibility.images, 16);
  }
}

TEST(ExperimentSpecTest, BadSusceptibilityTargetsNameTheField) {
  auto with = [](std::vector<std::string> targets, int images = 64) {
    ExperimentSpec s = Small();
    s.susceptibility = training::SusceptibilitySpec{std::move(targets), images};
    return s;
  };
  ExpectInvalid(with({"brightness:5", "blur:2"}),
                "spec.susceptibility.targets[1]: unknown shift kind 'blur'");
  ExpectInvalid(with({"brightness:6"}), "spec.susceptibility.targets[0]: the level of");
  ExpectInvalid(with({"contrast:0"}), "must be 1..5");
  ExpectInvalid(with({"contrast"}), "spec.susceptibility.targets[0]");
  ExpectInvalid(with({"contrast:2", "contrast:2"}), "spec.susceptibility.targets[1]: duplicate");
  ExpectInvalid(with({"brightness:5"}, 1), "spec.susceptibility.images: must be 2..1024");
  // Saturation needs colour: checked against the data set's channels when known.
  EXPECT_THAT(std::string(training::ValidateSusceptibilitySpec({{"saturation:4"}, 64}, 1, "mr")
                              .message()),
              HasSubstr("spec.susceptibility.targets[0]: saturation needs 3 channels"));
  EXPECT_TRUE(training::ValidateSusceptibilitySpec({{"saturation:4"}, 64}, 3, "d").ok());
}

TEST(ExperimentSpecTest, SusceptibilityJsonRoundTripsAndIsAbsentWhenUnset) {
  ExperimentSpec spec = Small();
  EXPECT_FALSE(ExperimentSpecToJson(spec).contains("susceptibility"));
  EXPECT_FALSE(ExperimentSpecFromJson(ExperimentSpecToJson(spec))->susceptibility.has_value());
  spec.susceptibility = training::SusceptibilitySpec{{"contrast:4"}, 12};
  auto back = ExperimentSpecFromJson(ExperimentSpecToJson(spec));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->susceptibility.has_value());
  EXPECT_THAT(back->susceptibility->targets, ElementsAre("contrast:4"));
  EXPECT_EQ(back->susceptibility->images, 12);
  // The child spec carries it too (TrainSpec JSON).
  auto child = training::TrainSpecFromJson(training::TrainSpecToJson(ExpandExperiment(*back)[0]));
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_THAT(child->susceptibility.targets, ElementsAre("contrast:4"));
  EXPECT_EQ(child->susceptibility.images, 12);
}

}  // namespace
}  // namespace segserve::experiment
