// The model store on a real directory and the registry with the real checkpoint loader;
// one test double (the ModelLoader seam) stands in for a load that fails.
#include "server/registry/registry.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/model/servable_model.h"
#include "server/registry/importer.h"
#include "tests/testing/model_fixture.h"
#include "tests/testing/server_process.h"

namespace segserve::registry {
namespace {
namespace fs = std::filesystem;

model::UnetConfig Config(int level = 1) { return testing::SmallUnetConfig(level); }

using testing::FailingLoader;

class RegistryTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  metrics::Metrics metrics_;
};

TEST_F(RegistryTest, VersionsCountUpAndNewestWins) {
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "m", Config(), 1).ok());
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "m", Config(), 2).ok());
  auto store = ModelStore::Open(dir_.path());
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->Get("m", 0)->version, 2);
  EXPECT_EQ((*store)->Get("m", 1)->version, 1);
  EXPECT_EQ((*store)->Get("m", 3).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->List().size(), 2u);
}

TEST_F(RegistryTest, ConcurrentAddsFromTwoStoresGetDistinctVersions) {
  auto a = ModelStore::Open(dir_.path());
  auto b = ModelStore::Open(dir_.path());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "m", Config(), 1).ok());
  const std::string bytes = *common::ReadFile((*a)->Get("m", 1)->checkpoint_path);
  std::vector<int64_t> versions(4);
  std::vector<std::thread> writers;
  for (int i = 0; i < 4; ++i) {
    writers.emplace_back([&, i] {
      auto stored = (i % 2 ? *a : *b)->AddVersion("m", bytes);
      versions[i] = stored.ok() ? stored->version : -1;
    });
  }
  for (auto& t : writers) t.join();
  std::sort(versions.begin(), versions.end());
  EXPECT_EQ(versions, (std::vector<int64_t>{2, 3, 4, 5}));
}

TEST_F(RegistryTest, IncompleteVersionsLeftByACrashAreInvisibleAndRemoved) {
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "m", Config(), 1).ok());
  fs::create_directories(dir_.path() + "/models/m/.tmp-123-456");
  std::ofstream(dir_.path() + "/models/m/.tmp-123-456/model.ckpt") << "half";
  auto store = ModelStore::Open(dir_.path());
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->List().size(), 1u);
  EXPECT_FALSE(fs::exists(dir_.path() + "/models/m/.tmp-123-456"));
}

TEST_F(RegistryTest, OpenRemovesOnlyTemporariesWhoseWriterIsGone) {
  // ".tmp-<pid>-<incarnation>-<random>": a writer that is gone (no such pid), one that is
  // alive in another process (our parent), and one with our pid but another incarnation
  // (a crashed earlier process that had the same pid, as in a restarted container).
  const std::string dir = dir_.path() + "/models/m/";
  const std::string gone = ".tmp-999999999-1-1";
  const std::string live = ".tmp-" + std::to_string(::getppid()) + "-1-1";
  const std::string earlier_us = ".tmp-" + std::to_string(::getpid()) + "-1-1";
  for (const auto& name : {gone, live, earlier_us}) fs::create_directories(dir + name);
  ASSERT_TRUE(ModelStore::Open(dir_.path()).ok());
  EXPECT_FALSE(fs::exists(dir + gone));
  EXPECT_TRUE(fs::exists(dir + live)) << "a live writer's version was removed";
  EXPECT_FALSE(fs::exists(dir + earlier_us));
  // A second store in this process (as a training run opens) keeps our own writes.
  auto store = ModelStore::Open(dir_.path());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "m", Config(), 1).ok());
  EXPECT_EQ((*store)->List().size(), 1u);
}

TEST_F(RegistryTest, AliasesPersistAndAreSeenByOtherInstances) {
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "m", Config(), 1).ok());
  auto a = ModelStore::Open(dir_.path());
  auto b = ModelStore::Open(dir_.path());
  ASSERT_TRUE((*a)->SetAlias("l1-pruned", AliasTarget{"m", 0}).ok());
  EXPECT_EQ((*b)->Aliases().at("l1-pruned").name, "m");
  auto reopened = ModelStore::Open(dir_.path());
  EXPECT_EQ((*reopened)->Aliases().at("l1-pruned").name, "m");
  EXPECT_EQ((*a)->SetAlias("bad alias", AliasTarget{"m", 0}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, ResolveDistinguishesUnknownUnloadedAndLoaded) {
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "m", Config(), 1).ok());
  auto store = ModelStore::Open(dir_.path());
  CheckpointModelLoader loader({});
  ModelRegistry registry(**store, loader, metrics_);
  EXPECT_EQ(registry.Resolve("nope", 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.Resolve("m", 0).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry.Resolve("../etc", 0).status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(registry.Load("m", 0).ok());
  ASSERT_TRUE(registry.SetAlias("baseline", AliasTarget{"m", 0}).ok());
  auto resolved = registry.Resolve("baseline", 0);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ((*resolved)->stored.name, "m");
  EXPECT_EQ(registry.SetAlias("x", AliasTarget{"missing", 0}).code(), absl::StatusCode::kNotFound);
}

TEST_F(RegistryTest, AutoPrecisionServesBf16OnlyForVersionsWhoseCheckPassed) {
  const nlohmann::json passed = {{"metrics", {{"test_iou", 0.80}, {"test_iou_bf16", 0.799}}}};
  const nlohmann::json failed = {{"metrics", {{"test_iou", 0.80}, {"test_iou_bf16", 0.70}}}};
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "passed", Config(), 1, passed).ok());
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "failed", Config(), 1, failed).ok());
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "unchecked", Config(), 1).ok());
  auto store = ModelStore::Open(dir_.path());
  CheckpointModelLoader::Options options;
  options.precision = {PrecisionMode::kAuto, 0.01, /*fast_bf16=*/true};
  CheckpointModelLoader loader(options);
  ModelRegistry registry(**store, loader, metrics_);
  for (const char* name : {"passed", "failed", "unchecked"}) {
    EXPECT_EQ(registry.Get(name, 0)->precision, "") << name;  // not loaded yet
    absl::StatusOr<ModelStatus> status = registry.Load(name, 0);
    ASSERT_TRUE(status.ok()) << status.status();
    const bool bf16 = std::string(name) == "passed";
    EXPECT_EQ(status->precision, bf16 ? "bf16" : "fp32") << name;
    auto resolved = registry.Resolve(name, 0);
    ASSERT_TRUE(resolved.ok());
    EXPECT_EQ((*resolved)->bfloat16, bf16) << name;
    EXPECT_EQ((*resolved)->servable->options().bfloat16, bf16) << name;
  }
  // The bf16 version answers, in float32 logits of the right shape.
  auto passed_model = registry.Resolve("passed", 0);
  auto logits = (*passed_model)->servable->Forward(torch::rand({1, 3, 64, 64}));
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_EQ(logits->scalar_type(), torch::kFloat);
  EXPECT_EQ(logits->size(1), 2);
}

TEST_F(RegistryTest, AFailedLoadKeepsServingTheOldVersion) {
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "m", Config(), 1).ok());
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "m", Config(), 2).ok());
  auto store = ModelStore::Open(dir_.path());
  FailingLoader loader(/*failing_version=*/2);
  ModelRegistry registry(**store, loader, metrics_);
  ASSERT_TRUE(registry.Load("m", 1).ok());
  auto held = registry.Resolve("m", 0);
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(registry.Load("m", 2).ok());
  auto status = registry.Get("m", 2);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, LoadState::kFailed);
  EXPECT_NE(status->load_error.find("injected"), std::string::npos);
  EXPECT_EQ((*registry.Resolve("m", 0))->stored.version, 1);
  // Unloading while a request holds the model: the holder keeps a usable model.
  ASSERT_TRUE(registry.Unload("m", 1).ok());
  EXPECT_EQ(registry.Resolve("m", 0).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE((*held)->servable, nullptr);
  // A request for the version that failed is told why.
  auto failed = registry.Resolve("m", 2);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(failed.status().message().find("failed to load: injected"), std::string::npos)
      << failed.status();
}

TEST_F(RegistryTest, ImportRejectsWrongKeysWithTheirNames) {
  auto store = ModelStore::Open(dir_.path());
  auto state_dict = testing::TestModelStateDict(Config(0), 1);  // L0 weights
  ASSERT_TRUE(state_dict.ok());
  ImportRequest request;
  request.name = "imported";
  request.config = Config(2);  // L2 has fewer decoder input channels: shapes differ
  request.state_dict_bytes = *state_dict;
  auto imported = ImportStateDict(**store, request);
  ASSERT_EQ(imported.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(imported.status().message().find("decoder.blocks"), std::string::npos)
      << imported.status();
  request.config = Config(0);
  imported = ImportStateDict(**store, request);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->version, 1);
}

TEST_F(RegistryTest, AnImportIdRegistersOnceAcrossRetriesAndStores) {
  auto store = ModelStore::Open(dir_.path());
  ASSERT_TRUE(store.ok());
  auto state_dict = testing::TestModelStateDict(Config(0), 1);
  ASSERT_TRUE(state_dict.ok());
  ImportRequest request;
  request.name = "once";
  request.config = Config(0);
  request.state_dict_bytes = *state_dict;
  request.import_id = "retry-0001";
  auto first = ImportStateDict(**store, request);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->metadata.value("import_id", ""), "retry-0001");
  // The retry (its reply was lost), through another instance of the store.
  auto other = ModelStore::Open(dir_.path());
  ASSERT_TRUE(other.ok());
  auto retried = ImportStateDict(**other, request);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->version, first->version);
  request.import_id = "another-id";
  auto second = ImportStateDict(**store, request);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->version, first->version + 1);
  request.import_id.clear();  // without an id every import adds a version
  EXPECT_EQ(ImportStateDict(**store, request)->version, first->version + 2);
  ASSERT_TRUE((*store)->Refresh().ok());
  EXPECT_EQ((*store)->List().size(), 3u);
  request.import_id = "bad id!";
  auto bad = ImportStateDict(**store, request);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("import_id"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace segserve::registry
