// The model store's in-memory tables: reads and Resolve never wait for a version being
// written and need no file system; another process's writes (simulated by changing the
// directory the way its commit would: a new numbered directory, a new aliases.json)
// become visible on Refresh, on the background refresh and on ModelRegistry::Load.
#include <filesystem>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/registry/registry.h"
#include "tests/testing/model_fixture.h"
#include "tests/testing/server_process.h"

namespace segserve::registry {
namespace {
namespace fs = std::filesystem;

// A bound on waits for something that must happen promptly; never a way to wait for time.
constexpr absl::Duration kPromptly = absl::Seconds(60);

model::UnetConfig Config(int level = 1) { return testing::SmallUnetConfig(level); }


class ModelStoreTablesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::AddTestModel(dir_.path(), "m", Config(), 1).ok());
    models_ = dir_.path() + "/models";
  }
  // What another process's AddVersion leaves behind: a complete numbered directory.
  void CommitVersionElsewhere(int64_t from, int64_t to) {
    fs::copy(models_ + "/m/" + std::to_string(from), models_ + "/m/" + std::to_string(to),
             fs::copy_options::recursive);
  }

  testing::TempDir dir_;
  std::string models_;
  metrics::Metrics metrics_;
  CheckpointModelLoader loader_{CheckpointModelLoader::Options{}};
};

TEST_F(ModelStoreTablesTest, ResolveAndReadsCompleteWhileAVersionIsBeingWritten) {
  absl::Notification writing, release;
  ModelStoreOptions options = testing::NoBackgroundRefresh();
  options.before_commit_for_testing = [&](const std::string&) {
    writing.Notify();
    release.WaitForNotification();  // the writer stays inside AddVersion until released
  };
  auto store = ModelStore::Open(dir_.path(), options);
  ASSERT_TRUE(store.ok()) << store.status();
  ModelRegistry registry(**store, loader_, metrics_);
  ASSERT_TRUE(registry.Load("m", 1).ok());
  ASSERT_TRUE(registry.SetAlias("baseline", AliasTarget{"m", 0}).ok());
  const std::string bytes = *common::ReadFile((*store)->Get("m", 1)->checkpoint_path);

  std::thread writer([&] { EXPECT_TRUE((*store)->AddVersion("m", bytes).ok()); });
  writing.WaitForNotification();
  absl::Notification readers_done;
  std::thread readers([&] {
    for (int i = 0; i < 100; ++i) {
      auto resolved = registry.Resolve("baseline", 0);
      ASSERT_TRUE(resolved.ok()) << resolved.status();
      EXPECT_EQ((*resolved)->stored.version, 1);
    }
    EXPECT_EQ((*store)->Get("m", 0)->version, 1);  // not committed yet
    EXPECT_EQ((*store)->List().size(), 1u);
    EXPECT_EQ(registry.List().size(), 1u);
    EXPECT_TRUE((*store)->SetAlias("l1-pruned", AliasTarget{"m", 1}).ok());
    readers_done.Notify();
  });
  const bool completed = readers_done.WaitForNotificationWithTimeout(kPromptly);
  release.Notify();
  writer.join();
  readers.join();
  EXPECT_TRUE(completed) << "Resolve waited for AddVersion's write";
  EXPECT_EQ((*store)->Get("m", 0)->version, 2);  // published by the write itself
  EXPECT_EQ((*store)->Aliases().at("l1-pruned").version, 1);
}

TEST_F(ModelStoreTablesTest, ResolveAndReadsNeedNoFileSystem) {
  auto store = ModelStore::Open(dir_.path(), testing::NoBackgroundRefresh());
  ASSERT_TRUE(store.ok());
  ModelRegistry registry(**store, loader_, metrics_);
  ASSERT_TRUE(registry.Load("m", 0).ok());
  ASSERT_TRUE(registry.SetAlias("baseline", AliasTarget{"m", 0}).ok());
  // With the directory gone, every read still answers from memory.
  fs::rename(models_, models_ + ".away");
  auto resolved = registry.Resolve("baseline", 0);
  EXPECT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ((*store)->Get("m", 1)->version, 1);
  EXPECT_EQ((*store)->List().size(), 1u);
  EXPECT_EQ((*store)->Aliases().count("baseline"), 1u);
  EXPECT_EQ(registry.Resolve("m", 2).status().code(), absl::StatusCode::kNotFound);
  // A refresh that cannot read the directory keeps the tables.
  EXPECT_FALSE((*store)->Refresh().ok());
  EXPECT_EQ((*store)->List().size(), 1u);
  fs::rename(models_ + ".away", models_);
}

TEST_F(ModelStoreTablesTest, AnotherProcessesWritesAppearOnRefresh) {
  auto store = ModelStore::Open(dir_.path(), testing::NoBackgroundRefresh());
  ASSERT_TRUE(store.ok());
  CommitVersionElsewhere(1, 2);
  ASSERT_TRUE(common::WriteFileAtomically(models_ + "/aliases.json",
                                          R"({"baseline": {"name": "m", "version": 2}})")
                  .ok());
  EXPECT_EQ((*store)->Get("m", 2).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->Aliases().count("baseline"), 0u);
  ASSERT_TRUE((*store)->Refresh().ok());
  EXPECT_EQ((*store)->Get("m", 0)->version, 2);
  EXPECT_EQ((*store)->Aliases().at("baseline").version, 2);
  // A version another process removed disappears too.
  fs::remove_all(models_ + "/m/2");
  ASSERT_TRUE((*store)->Refresh().ok());
  EXPECT_EQ((*store)->Get("m", 0)->version, 1);
}

TEST_F(ModelStoreTablesTest, StoresOfOneDirectoryInAProcessShareTheirTables) {
  auto server_store = ModelStore::Open(dir_.path(), testing::NoBackgroundRefresh());
  auto training_store = ModelStore::Open(dir_.path(), testing::NoBackgroundRefresh());
  ASSERT_TRUE(server_store.ok() && training_store.ok());
  const std::string bytes = *common::ReadFile((*server_store)->Get("m", 1)->checkpoint_path);
  ASSERT_TRUE((*training_store)->AddVersion("m", bytes).ok());
  ASSERT_TRUE((*training_store)->SetAlias("l1-pruned", AliasTarget{"m", 2}).ok());
  EXPECT_EQ((*server_store)->Get("m", 0)->version, 2);
  EXPECT_EQ((*server_store)->Aliases().at("l1-pruned").version, 2);
}

TEST_F(ModelStoreTablesTest, TheBackgroundRefreshPicksUpAnotherProcessesVersion) {
  absl::Mutex mu;
  int refreshes = 0;
  ModelStoreOptions options;
  options.refresh_interval = absl::Milliseconds(1);
  options.after_refresh_for_testing = [&] {
    absl::MutexLock lock(&mu);
    ++refreshes;
  };
  auto store = ModelStore::Open(dir_.path(), options);
  ASSERT_TRUE(store.ok());
  CommitVersionElsewhere(1, 2);
  int seen = 0;
  {
    absl::MutexLock lock(&mu);
    seen = refreshes;
  }
  // A refresh that started before the copy may miss it; the one after it may not.
  absl::MutexLock lock(&mu);
  auto two_more = [&] { return refreshes >= seen + 2; };
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&two_more), kPromptly));
  EXPECT_EQ((*store)->Get("m", 0)->version, 2);
}

TEST_F(ModelStoreTablesTest, LoadFindsAVersionAnotherProcessJustWrote) {
  auto store = ModelStore::Open(dir_.path(), testing::NoBackgroundRefresh());
  ASSERT_TRUE(store.ok());
  ModelRegistry registry(**store, loader_, metrics_);
  CommitVersionElsewhere(1, 2);
  auto loaded = registry.Load("m", 2);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*registry.Resolve("m", 0))->stored.version, 2);
}

}  // namespace
}  // namespace segserve::registry
