// Deleting model versions (issue 19) with the real checkpoint loader, on every store
// backend (files, PostgreSQL with a blob directory, PostgreSQL with large objects): alias
// refusals, unloading before the blobs go (and no blob left behind), in-flight holders
// finishing on their shared_ptr, version numbers never handed out twice; tombstones left by
// a crash (files).
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "server/common/dir_util.h"
#include "server/model/servable_model.h"
#include "server/registry/registry.h"
#include "tests/registry/store_backends.h"
#include "tests/testing/model_fixture.h"
#include "tests/testing/server_process.h"

namespace segserve::registry {
namespace {
namespace fs = std::filesystem;

model::UnetConfig Config(int level = 1) { return testing::SmallUnetConfig(level); }

class ModelDeleteTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override {
    auto store = factory_.Open();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    for (uint64_t seed : {1, 2, 3}) {
      ASSERT_TRUE(testing::AddTestModel(*store_, "m", Config(), seed).ok());
    }
    registry_ = std::make_unique<ModelRegistry>(*store_, loader_, metrics_);
  }
  int64_t Blobs() {
    absl::StatusOr<int64_t> count = factory_.BlobCount();
    EXPECT_TRUE(count.ok()) << count.status();
    return count.ok() ? *count : -1;
  }

  StoreFactory factory_{GetParam()};
  metrics::Metrics metrics_;
  CheckpointModelLoader loader_{CheckpointModelLoader::Options{}};
  std::unique_ptr<ModelStore> store_;
  std::unique_ptr<ModelRegistry> registry_;
};

TEST_P(ModelDeleteTest, DeletesOneVersionAndItsFiles) {
  auto deleted = registry_->Delete("m", 2);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  ASSERT_EQ(deleted->size(), 1u);
  EXPECT_EQ((*deleted)[0].version, 2);
  EXPECT_GT((*deleted)[0].disk_bytes, 0);
  EXPECT_EQ(Blobs(), 2) << "the deleted version's blob is gone, the others stay";
  EXPECT_EQ(store_->Get("m", 2).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->List().size(), 2u);
  if (GetParam() == StoreBackend::kFiles) {
    EXPECT_TRUE(common::RemoveTombstones(factory_.data_dir() + "/models/m") == 0)
        << "tombstone left";
  }
  // Another instance (a replica) sees the same.
  auto other = factory_.Open();
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ((*other)->List().size(), 2u);
  EXPECT_EQ(registry_->Delete("m", 2).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(ModelDeleteTest, RefusedWhileAnAliasIsPinnedToTheVersion) {
  ASSERT_TRUE(registry_->SetAlias("baseline", AliasTarget{"m", 1}).ok());
  auto refused = registry_->Delete("m", 1);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("'baseline'"), std::string::npos) << refused.status();
  EXPECT_EQ(Blobs(), 3);
  EXPECT_TRUE(registry_->Delete("m", 2).ok()) << "an unaliased version is deletable";
}

TEST_P(ModelDeleteTest, AnAliasToTheNewestBlocksOnlyTheNewestVersion) {
  ASSERT_TRUE(registry_->SetAlias("l1-pruned", AliasTarget{"m", 0}).ok());
  auto refused = registry_->Delete("m", 3);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("'l1-pruned'"), std::string::npos);
  EXPECT_NE(refused.status().message().find("newest"), std::string::npos);
  EXPECT_TRUE(registry_->Delete("m", 1).ok()) << "older versions stay deletable";
  auto all = registry_->Delete("m", ModelStore::kAllVersions);
  EXPECT_EQ(all.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(all.status().message().find("'l1-pruned'"), std::string::npos);
  EXPECT_EQ(store_->List().size(), 2u);
}

TEST_P(ModelDeleteTest, AnAliasNameIsNotAModelName) {
  ASSERT_TRUE(registry_->SetAlias("baseline", AliasTarget{"m", 1}).ok());
  auto refused = registry_->Delete("baseline", 1);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(refused.status().message().find("alias"), std::string::npos);
}

TEST_P(ModelDeleteTest, ALoadedVersionIsUnloadedHoldersFinishLaterResolvesAreNotFound) {
  ASSERT_TRUE(registry_->Load("m", 3).ok());
  auto held = registry_->Resolve("m", 3);  // an in-flight request's reference
  ASSERT_TRUE(held.ok()) << held.status();
  std::vector<std::string> unloaded;
  registry_->SetListener([&](const LoadedModel& model, bool loaded) {
    if (!loaded) unloaded.push_back(model.key());
  });
  ASSERT_TRUE(registry_->Delete("m", 3).ok());
  EXPECT_EQ(unloaded, std::vector<std::string>{"m:3"});
  EXPECT_EQ(Blobs(), 2);
  // The holder's model still runs although its files are gone.
  auto input = torch::zeros({1, 3, 64, 64});
  auto output = (*held)->servable->Forward(input);
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_EQ(output->size(1), 2);
  EXPECT_EQ(registry_->Resolve("m", 3).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Get("m", 3).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(ModelDeleteTest, AllVersionsGoAndTheNameStartsAgain) {
  ASSERT_TRUE(registry_->Load("m", 0).ok());
  auto deleted = registry_->Delete("m", ModelStore::kAllVersions);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->size(), 3u);
  EXPECT_TRUE(store_->List().empty());
  EXPECT_EQ(Blobs(), 0);
  if (GetParam() == StoreBackend::kFiles)
    EXPECT_FALSE(fs::exists(factory_.data_dir() + "/models/m"));
  EXPECT_EQ(registry_->Resolve("m", 0).status().code(), absl::StatusCode::kNotFound);
  auto again = testing::AddTestModel(*store_, "m", Config(), 4);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->version, 1);
}

TEST_P(ModelDeleteTest, ADeletedNewestVersionNumberIsNotReused) {
  ASSERT_TRUE(registry_->Delete("m", 3).ok());
  auto next = testing::AddTestModel(*store_, "m", Config(), 5);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->version, 4);
  EXPECT_EQ(store_->List().size(), 3u) << ".highest_version is not a model";
}

INSTANTIATE_TEST_SUITE_P(Files, ModelDeleteTest, ::testing::Values(StoreBackend::kFiles));
INSTANTIATE_TEST_SUITE_P(Postgres, ModelDeleteTest,
                         ::testing::Values(StoreBackend::kPostgresDirectory,
                                           StoreBackend::kPostgresLargeObject));

TEST(FileModelDelete, TombstonesLeftByACrashAreRemovedAtOpenAndNeverListed) {
  testing::TempDir dir;
  for (uint64_t seed : {1, 2, 3}) {
    ASSERT_TRUE(testing::AddTestModel(dir.path(), "m", Config(), seed).ok());
  }
  auto store = ModelStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  std::unique_ptr<ModelStore>& store_ = *store;
  // A crash after the rename, while the files were being removed.
  fs::rename(dir.path() + "/models/m/2", dir.path() + "/models/m/.deleted-2-123");
  fs::create_directories(dir.path() + "/models/.deleted-old-9/1");
  std::ofstream(dir.path() + "/models/.deleted-old-9/1/meta.json") << "{}";
  // The store answers from memory; a change behind its back shows after a refresh.
  ASSERT_TRUE(store_->Refresh().ok());
  EXPECT_EQ(store_->List().size(), 2u) << "a tombstone is never listed";
  auto reopened = ModelStore::Open(dir.path());
  ASSERT_TRUE(reopened.ok());
  EXPECT_FALSE(fs::exists(dir.path() + "/models/m/.deleted-2-123"));
  EXPECT_FALSE(fs::exists(dir.path() + "/models/.deleted-old-9"));
  EXPECT_EQ((*reopened)->List().size(), 2u);
}

}  // namespace
}  // namespace segserve::registry
