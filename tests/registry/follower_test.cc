// RegistryFollower on a real model store directory with the real checkpoint loader (the
// FailingLoader double at the ModelLoader seam for a version that cannot load): new
// versions and alias moves written by "another process" (another ModelStore writer on the
// same directory) are loaded, and what they replace is unloaded, without breaking a holder.
#include "server/registry/follower.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model/servable_model.h"
#include "tests/testing/model_fixture.h"
#include "tests/testing/server_process.h"

namespace segserve::registry {
namespace {

using ::testing::HasSubstr;

// Fails one version's load the way a corrupted checkpoint does.
class FailingLoader : public testing::FailingLoader {
 public:
  explicit FailingLoader(int64_t version)
      : testing::FailingLoader(version, absl::DataLossError("checksum mismatch")) {}
};

model::UnetConfig Config(int level = 1) { return testing::SmallUnetConfig(level); }


std::vector<std::string> Loaded(const ModelRegistry& registry) {
  std::vector<std::string> keys;
  for (const ModelStatus& status : registry.List()) {
    if (status.state == LoadState::kLoaded) {
      keys.push_back(status.stored.name + ":" + std::to_string(status.stored.version));
    }
  }
  return keys;
}

class FollowerTest : public ::testing::Test {
 protected:
  void Add(const std::string& name, int seed) {
    ASSERT_TRUE(testing::AddTestModel(dir_.path(), name, Config(), seed).ok());
  }
  testing::TempDir dir_;
  metrics::Metrics metrics_;
};

TEST_F(FollowerTest, NewVersionsAndAliasMovesAreLoadedAndWhatTheyReplaceUnloaded) {
  Add("m", 1);
  auto store = ModelStore::Open(dir_.path(), testing::NoBackgroundRefresh());
  ASSERT_TRUE(store.ok());
  CheckpointModelLoader loader{CheckpointModelLoader::Options{}};
  ModelRegistry registry(**store, loader, metrics_);
  ASSERT_TRUE(registry.LoadAtStartup({}).ok());
  RegistryFollower follower(registry, FollowerOptions{{}, absl::ZeroDuration()});
  ASSERT_TRUE(follower.SyncOnce().ok());
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("m:1"));
  auto held = registry.Resolve("m", 0);  // an in-flight request on v1
  ASSERT_TRUE(held.ok());

  Add("m", 2);  // a trainer registers v2
  ASSERT_TRUE(follower.SyncOnce().ok());
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("m:2"));
  EXPECT_EQ((*registry.Resolve("m", 0))->stored.version, 2);
  EXPECT_NE((*held)->servable, nullptr) << "the request on v1 finishes on it";

  // Someone pins an alias to v1: it is loaded again beside v2; moving it away unloads it.
  auto writer = ModelStore::Open(dir_.path());
  ASSERT_TRUE((*writer)->SetAlias("prod", {"m", 1}).ok());
  ASSERT_TRUE(follower.SyncOnce().ok());
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("m:1", "m:2"));
  EXPECT_EQ((*registry.Resolve("prod", 0))->stored.version, 1);
  ASSERT_TRUE((*writer)->SetAlias("prod", {"m", 0}).ok());
  ASSERT_TRUE(follower.SyncOnce().ok());
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("m:2"));
  EXPECT_EQ((*registry.Resolve("prod", 0))->stored.version, 2);
}

TEST_F(FollowerTest, AVersionThatCannotLoadLeavesItsPredecessorServingAndIsNotRetried) {
  Add("m", 1);
  auto store = ModelStore::Open(dir_.path(), testing::NoBackgroundRefresh());
  FailingLoader loader(/*failing_version=*/2);
  ModelRegistry registry(**store, loader, metrics_);
  ASSERT_TRUE(registry.LoadAtStartup({}).ok());
  RegistryFollower follower(registry, FollowerOptions{{}, absl::ZeroDuration()});
  ASSERT_TRUE(follower.SyncOnce().ok());
  Add("m", 2);
  absl::Status synced = follower.SyncOnce();
  EXPECT_THAT(synced.message(), HasSubstr("m:2 did not load"));
  EXPECT_THAT(synced.message(), HasSubstr("checksum mismatch"));
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("m:1"));
  EXPECT_EQ((*registry.Resolve("m", 0))->stored.version, 1);
  EXPECT_TRUE(follower.SyncOnce().ok()) << "not retried every pass";
  EXPECT_EQ(registry.Get("m", 2)->state, LoadState::kFailed) << "the reason stays visible";
  Add("m", 3);
  ASSERT_TRUE(follower.SyncOnce().ok());
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("m:3"));
}

TEST_F(FollowerTest, AFollowListLoadsOnlyItsReferencesAndLeavesManualLoadsAlone) {
  Add("a", 1);
  Add("b", 2);
  auto store = ModelStore::Open(dir_.path(), testing::NoBackgroundRefresh());
  ASSERT_TRUE((*store)->SetAlias("l1-pruned", {"a", 0}).ok());
  CheckpointModelLoader loader{CheckpointModelLoader::Options{}};
  ModelRegistry registry(**store, loader, metrics_);
  RegistryFollower follower(registry, FollowerOptions{{"l1-pruned"}, absl::ZeroDuration()});
  ASSERT_TRUE(follower.SyncOnce().ok());
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("a:1"));
  ASSERT_TRUE(registry.Load("b", 1).ok());  // an operator loads b by hand
  Add("b", 3);
  Add("a", 4);
  ASSERT_TRUE(follower.SyncOnce().ok());
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("a:2", "b:1"));
}

TEST_F(FollowerTest, AnAliasMovedElsewhereKeepsServingItsOldTargetUntilTheNewOneIsLoaded) {
  Add("m", 1);
  Add("m", 2);
  auto store = ModelStore::Open(dir_.path(), testing::NoBackgroundRefresh());
  ASSERT_TRUE((*store)->SetAlias("prod", {"m", 1}).ok());
  FailingLoader loader(/*failing_version=*/3);
  ModelRegistry registry(**store, loader, metrics_);
  RegistryFollower follower(registry, FollowerOptions{{"prod"}, absl::ZeroDuration()});
  ASSERT_TRUE(follower.SyncOnce().ok());
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("m:1"));
  // Another process moves the alias to v2; this process's store sees it (its background
  // rescan) before the follower has loaded v2: requests through the alias stay on v1.
  auto writer = ModelStore::Open(dir_.path());
  ASSERT_TRUE((*writer)->SetAlias("prod", {"m", 2}).ok());
  ASSERT_TRUE((*store)->Refresh().ok());
  ASSERT_EQ((*store)->Aliases().at("prod").version, 2);
  auto during = registry.Resolve("prod", 0);
  ASSERT_TRUE(during.ok()) << during.status();
  EXPECT_EQ((*during)->stored.version, 1);
  ASSERT_TRUE(follower.SyncOnce().ok());
  EXPECT_EQ((*registry.Resolve("prod", 0))->stored.version, 2);
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("m:2"));
  // A move to a version that cannot load: the alias keeps serving v2.
  Add("m", 3);
  ASSERT_TRUE((*writer)->SetAlias("prod", {"m", 3}).ok());
  EXPECT_FALSE(follower.SyncOnce().ok());
  EXPECT_EQ((*registry.Resolve("prod", 0))->stored.version, 2);
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("m:2"));
}

TEST_F(FollowerTest, TheBackgroundThreadPicksUpANewVersionWithinItsInterval) {
  Add("m", 1);
  auto store = ModelStore::Open(dir_.path(), testing::NoBackgroundRefresh());
  CheckpointModelLoader loader{CheckpointModelLoader::Options{}};
  ModelRegistry registry(**store, loader, metrics_);
  RegistryFollower follower(registry, FollowerOptions{{}, absl::Milliseconds(50)});
  follower.Start();
  Add("m", 2);
  for (int i = 0; i < 400 && Loaded(registry) != std::vector<std::string>{"m:2"}; ++i) {
    absl::SleepFor(absl::Milliseconds(25));
  }
  EXPECT_THAT(Loaded(registry), ::testing::ElementsAre("m:2"));
  follower.Stop();
}

}  // namespace
}  // namespace segserve::registry
