// File: tests/training/train_spec_test.cc — TrainSpec JSON round trip and validation errors.
#include "server/training/train_spec.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace segserve::training {
namespace {

class TrainSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/segserve_train_spec_XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::filesystem::create_directories(dir_ + "/datasets/synth");
    std::filesystem::create_directories(dir_ + "/weights");
    std::ofstream(dir_ + "/weights/r18.pt") << "x";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  TrainSpec Valid() {
    TrainSpec s;
    s.dataset = "synth";
    return s;
  }
  std::string dir_;
};

TEST_F(TrainSpecTest, JsonRoundTripKeepsEveryField) {
  TrainSpec s = Valid();
  s.encoder = "resnet18";
  s.prune_level = 3;
  s.epochs = 7;
  s.batch_size = 2;
  s.learning_rate = 0.01;
  s.ce_weight = 0.5;
  s.dice_weight = 2;
  s.flips = false;
  s.color = true;
  s.crop_size = 64;
  s.seed = 99;
  s.pretrained_encoder = "weights/r18.pt";
  s.early_stopping_patience = 3;
  s.device = "cpu";
  s.test_split = "val";
  s.cross_domain = {{"dark", "", "test", "brightness:4"}};
  s.model_name = "m";
  s.set_aliases = {"a", "b"};
  s.max_steps_per_epoch = 5;
  s.precision = "bf16";
  s.susceptibility = {{"brightness:5", "contrast:3"}, 16};
  auto back = TrainSpecFromJsonString(TrainSpecToJsonString(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(TrainSpecToJson(*back), TrainSpecToJson(s));
}

TEST_F(TrainSpecTest, MissingKeysTakeDefaults) {
  auto s = TrainSpecFromJsonString(R"({"dataset": "synth"})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->epochs, 50);
  EXPECT_EQ(s->batch_size, 8);
  EXPECT_DOUBLE_EQ(s->learning_rate, 1e-3);
  EXPECT_EQ(s->seed, 1u);
  EXPECT_EQ(s->test_split, "test");
  EXPECT_TRUE(s->flips);
  EXPECT_EQ(ModelNameOf(*s), "synth-resnet34-l1");
  EXPECT_TRUE(ValidateTrainSpec(*s, dir_).ok());
}

TEST_F(TrainSpecTest, WrongJsonTypeNamesTheField) {
  auto s = TrainSpecFromJsonString(R"({"dataset": "synth", "epochs": "many"})");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("spec.epochs"), std::string::npos) << s.status();
}

TEST_F(TrainSpecTest, UnknownDatasetIsNotFound) {
  TrainSpec s = Valid();
  s.dataset = "nope";
  absl::Status st = ValidateTrainSpec(s, dir_);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "spec.dataset: data set 'nope' not found under datasets/");
}

TEST_F(TrainSpecTest, PruneLevelSevenIsInvalid) {
  TrainSpec s = Valid();
  s.prune_level = 7;
  absl::Status st = ValidateTrainSpec(s, dir_);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "spec.prune_level: must be 0..4, got 7");
}

TEST_F(TrainSpecTest, ZeroEpochsIsInvalid) {
  TrainSpec s = Valid();
  s.epochs = 0;
  absl::Status st = ValidateTrainSpec(s, dir_);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "spec.epochs: must be 1..10000, got 0");
}

TEST_F(TrainSpecTest, PathsEscapingTheDataRootAreInvalid) {
  TrainSpec s = Valid();
  s.pretrained_encoder = "../../etc/passwd";
  absl::Status st = ValidateTrainSpec(s, dir_);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("spec.pretrained_encoder"), std::string::npos) << st;
  s.pretrained_encoder = "/etc/passwd";
  EXPECT_EQ(ValidateTrainSpec(s, dir_).code(), absl::StatusCode::kInvalidArgument);
  s = Valid();
  s.dataset = "../datasets/synth";
  st = ValidateTrainSpec(s, dir_);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("spec.dataset"), std::string::npos) << st;
  // A symlink inside datasets/ pointing out of the data root.
  std::filesystem::create_directory_symlink("/tmp", dir_ + "/datasets/evil");
  s.dataset = "evil";
  EXPECT_EQ(ValidateTrainSpec(s, dir_).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TrainSpecTest, SusceptibilityTargetsAreCheckedNamingTheField) {
  TrainSpec s = Valid();
  s.susceptibility = {{"brightness:5", "saturation:1"}, 64};
  EXPECT_TRUE(ValidateTrainSpec(s, dir_).ok());
  s.susceptibility.targets = {"brightness:5", "Brightness:4"};
  absl::Status st = ValidateTrainSpec(s, dir_);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(),
            "spec.susceptibility.targets[1]: unknown shift kind 'Brightness'; expected "
            "brightness, contrast or saturation, as in brightness:5");
  s.susceptibility.targets = {"none"};
  EXPECT_NE(ValidateTrainSpec(s, dir_).message().find("spec.susceptibility.targets[0]"),
            std::string::npos);
  s.susceptibility.targets = {"contrast:03"};
  EXPECT_EQ(ValidateTrainSpec(s, dir_).message(),
            "spec.susceptibility.targets[0]: write 'contrast:03' as 'contrast:3'");
  s.susceptibility.targets = {"contrast:6"};
  EXPECT_EQ(ValidateTrainSpec(s, dir_).message(),
            "spec.susceptibility.targets[0]: the level of 'contrast:6' must be 1..5, as in "
            "contrast:5");
  s.susceptibility = {{"contrast:3"}, 2000};
  EXPECT_EQ(ValidateTrainSpec(s, dir_).message(),
            "spec.susceptibility.images: must be 2..1024, got 2000");
}

TEST_F(TrainSpecTest, MissingPretrainedFileIsNotFound) {
  TrainSpec s = Valid();
  s.pretrained_encoder = "weights/missing.pt";
  EXPECT_EQ(ValidateTrainSpec(s, dir_).code(), absl::StatusCode::kNotFound);
  s.pretrained_encoder = "weights/r18.pt";
  EXPECT_TRUE(ValidateTrainSpec(s, dir_).ok());
}

TEST_F(TrainSpecTest, OtherLimitsNameTheirField) {
  struct Case {
    std::function<void(TrainSpec&)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](TrainSpec& s) { s.batch_size = 0; }, "spec.batch_size"},
      {[](TrainSpec& s) { s.learning_rate = 0; }, "spec.learning_rate"},
      {[](TrainSpec& s) { s.ce_weight = 101; }, "spec.loss.cross_entropy"},
      {[](TrainSpec& s) { s.ce_weight = s.dice_weight = 0; }, "spec.loss"},
      {[](TrainSpec& s) { s.crop_size = 48; }, "spec.augmentation.crop_size"},
      {[](TrainSpec& s) { s.encoder = "vgg"; }, "spec.encoder"},
      {[](TrainSpec& s) { s.device = "tpu"; }, "spec.device"},
      {[](TrainSpec& s) { s.test_split = "x"; }, "spec.test_split"},
      {[](TrainSpec& s) {
         s.cross_domain = {{"", "", "", "blur:2"}};
       },
       "spec.cross_domain[0].shift"},
      {[](TrainSpec& s) {
         s.cross_domain = {{"", "other", "", ""}};
       },
       "spec.cross_domain[0].dataset"},
      {[](TrainSpec& s) { s.model_name = "a/b"; }, "spec.model_name"},
      {[](TrainSpec& s) { s.set_aliases = {""}; }, "spec.set_aliases[0]"},
      {[](TrainSpec& s) { s.max_steps_per_epoch = -1; }, "spec.max_steps_per_epoch"},
      {[](TrainSpec& s) { s.precision = "int8"; }, "spec.precision"},
      {[](TrainSpec& s) {
         s.precision = "fp16";
         s.device = "cpu";
       },
       "spec.precision: fp16 needs a CUDA device"},
  };
  for (const Case& c : cases) {
    TrainSpec s = Valid();
    c.mutate(s);
    absl::Status st = ValidateTrainSpec(s, dir_);
    EXPECT_FALSE(st.ok()) << c.field;
    EXPECT_NE(st.message().find(c.field), std::string::npos) << st;
  }
}

TEST_F(TrainSpecTest, SaturationNeedsColourInTheSetAndTheModel) {
  const auto manifest = [&](const std::string& name, int channels) {
    std::filesystem::create_directories(dir_ + "/datasets/" + name);
    std::ofstream(dir_ + "/datasets/" + name + "/dataset.json")
        << "{\"channels\": " << channels << ", \"classes\": [{\"id\": 0, \"name\": \"bg\"}]}";
  };
  manifest("mr", 1);
  manifest("rgb", 3);
  TrainSpec s = Valid();
  s.dataset = "mr";
  s.cross_domain = {{"", "", "val", "saturation:2"}};
  absl::Status st = ValidateTrainSpec(s, dir_);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(),
            "spec.cross_domain[0].shift: saturation needs 3 channels; data set 'mr' has 1");
  // A colour set evaluated by a model trained on gray slices.
  s.cross_domain = {{"", "rgb", "", "saturation:2"}};
  EXPECT_EQ(ValidateTrainSpec(s, dir_).message(),
            "spec.cross_domain[0].shift: saturation needs 3 channels; the model, trained on "
            "data set 'mr', has 1");
  s.cross_domain = {{"", "", "", "brightness:5"}, {"", "", "", "contrast:5"}};
  EXPECT_TRUE(ValidateTrainSpec(s, dir_).ok());
  s.dataset = "rgb";
  s.cross_domain = {{"", "", "", "saturation:5"}};
  EXPECT_TRUE(ValidateTrainSpec(s, dir_).ok());
}

TEST_F(TrainSpecTest, CrossDomainLabelsAreDerived) {
  TrainSpec s = Valid();
  EXPECT_EQ(CrossDomainLabel(s, {"", "", "", "brightness:4"}), "brightness:4");
  EXPECT_EQ(CrossDomainLabel(s, {"", "other", "", ""}), "other");
  EXPECT_EQ(CrossDomainLabel(s, {"", "other", "val", "contrast:2"}), "other+contrast:2@val");
  EXPECT_EQ(CrossDomainLabel(s, {"mine", "other", "", ""}), "mine");
}

}  // namespace
}  // namespace segserve::training
