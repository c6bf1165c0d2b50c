// Parameter and state-dict key counts against segmentation_models_pytorch's Unet.
// The table is the output of `/usr/bin/python3 tests/model/reference_unet.py counts`
// (smp's architecture rebuilt from torchvision; the L0 rows equal smp's published figures).
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "server/model/state_dict.h"
#include "server/model/unet.h"

namespace segserve::model {
namespace {

struct Expected {
  const char* encoder;
  int level;
  int64_t parameters;
  int64_t keys;
};

constexpr Expected kSmpCounts[] = {
    // encoder, level, parameters, state-dict keys (3 input channels, 2 classes)
    {"resnet18", 0, 14328354, 182}, {"resnet18", 1, 14309922, 182}, {"resnet18", 2, 14273058, 182},
    {"resnet18", 3, 14125602, 182}, {"resnet18", 4, 13535778, 182}, {"resnet34", 0, 24436514, 278},
    {"resnet34", 1, 24418082, 278}, {"resnet34", 2, 24381218, 278}, {"resnet34", 3, 24233762, 278},
    {"resnet34", 4, 23643938, 278},
};

TEST(ParamCountTest, MatchesSmpForEveryEncoderAndLevel) {
  for (const Expected& e : kSmpCounts) {
    SCOPED_TRACE(std::string(e.encoder) + " L" + std::to_string(e.level));
    UnetConfig config;
    config.encoder = *ParseEncoderKind(e.encoder);
    config.skip_prune_level = e.level;
    Unet model(config);
    EXPECT_EQ(CountParameters(*model), e.parameters);
    EXPECT_EQ(CountStateDictKeys(*model), e.keys);
  }
}

TEST(ParamCountTest, KeysUseSmpNames) {
  Unet model(UnetConfig{});
  const StateDict sd = GetStateDict(*model);
  std::set<std::string> keys;
  for (const auto& [k, v] : sd) keys.insert(k);
  for (const char* key :
       {"encoder.conv1.weight", "encoder.bn1.running_mean", "encoder.bn1.num_batches_tracked",
        "encoder.layer1.0.bn1.running_mean", "encoder.layer2.0.downsample.0.weight",
        "encoder.layer2.0.downsample.1.running_var", "decoder.blocks.0.conv1.0.weight",
        "decoder.blocks.0.conv1.1.weight", "decoder.blocks.4.conv2.1.bias",
        "segmentation_head.0.weight", "segmentation_head.0.bias"}) {
    EXPECT_TRUE(keys.count(key)) << key;
  }
  EXPECT_FALSE(keys.count("encoder.fc.weight"));
  EXPECT_FALSE(keys.count("decoder.blocks.0.conv1.0.bias"));
}

TEST(ParamCountTest, PrunedBlocksLoseOnlySkipChannels) {
  // Input channels of decoder block i's first conv, for levels 0..4.
  const int expected[5][5] = {{768, 384, 192, 128, 32},
                              {768, 384, 192, 64, 32},
                              {768, 384, 128, 64, 32},
                              {768, 256, 128, 64, 32},
                              {512, 256, 128, 64, 32}};
  for (int level = 0; level <= 4; ++level) {
    UnetConfig config;
    config.skip_prune_level = level;
    Unet model(config);
    auto params = model->named_parameters();
    for (int block = 0; block < 5; ++block) {
      const std::string key = "decoder.blocks." + std::to_string(block) + ".conv1.0.weight";
      ASSERT_TRUE(params.contains(key));
      EXPECT_EQ(params[key].size(1), expected[level][block]) << key << " L" << level;
    }
  }
}

}  // namespace
}  // namespace segserve::model
