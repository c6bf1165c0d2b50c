// The model store's contract on every backend (files; PostgreSQL with a blob directory;
// PostgreSQL with large objects): numbering under concurrent writers, aliases and versions
// seen by another instance (a replica), loading through the registry, a corrupted or
// missing blob refused with the reason; and what only PostgreSQL has: a replica on another
// node without a shared volume (large objects), no large object and no blob file left by a
// failed write, orphaned blob files removed, replicas migrating at once, and the database
// going away and coming back.
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/model/servable_model.h"
#include "server/postgres/migrations.h"
#include "server/registry/postgres_model_store.h"
#include "server/registry/registry.h"
#include "tests/registry/store_backends.h"
#include "tests/testing/model_fixture.h"
#include "tests/testing/postgres_server.h"

namespace segserve::registry {
namespace {
namespace fs = std::filesystem;

model::UnetConfig Config(int level = 1) { return testing::SmallUnetConfig(level); }


class ModelStoreBackendTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override {
    auto store = factory_.Open(testing::NoBackgroundRefresh());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  std::unique_ptr<ModelStore> OpenAnother(ModelStoreOptions options = testing::NoBackgroundRefresh()) {
    auto store = factory_.Open(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  // Overwrites 16 bytes in the middle of the version's blob, wherever it lives.
  void CorruptBlob(const StoredVersion& stored) {
    if (GetParam() == StoreBackend::kPostgresLargeObject) {
      auto admin = factory_.Admin();
      ASSERT_TRUE(admin.ok()) << admin.status();
      ASSERT_TRUE(
          (*admin)
              ->ExecSql(absl::StrCat("SELECT lo_put(blob_oid, ", stored.checkpoint_bytes / 2,
                                     ", '\\x00112233445566778899aabbccddeeff'::bytea) "
                                     "FROM model_versions WHERE name = '",
                                     stored.name, "' AND version = ", stored.version))
              .ok());
      return;
    }
    std::fstream file(stored.checkpoint_path, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file.good()) << stored.checkpoint_path;
    file.seekp(stored.checkpoint_bytes / 2);
    file.write("0123456789abcdef", 16);
  }
  void RemoveBlob(const StoredVersion& stored) {
    if (GetParam() == StoreBackend::kPostgresLargeObject) {
      auto admin = factory_.Admin();
      ASSERT_TRUE(admin.ok()) << admin.status();
      ASSERT_TRUE((*admin)
                      ->ExecSql(absl::StrCat("SELECT lo_unlink(blob_oid) FROM model_versions "
                                             "WHERE name = '",
                                             stored.name, "' AND version = ", stored.version))
                      .ok());
      return;
    }
    ASSERT_TRUE(fs::remove(stored.checkpoint_path));
  }

  StoreFactory factory_{GetParam()};
  std::unique_ptr<ModelStore> store_;
  metrics::Metrics metrics_;
  CheckpointModelLoader loader_{CheckpointModelLoader::Options{}};
};

TEST_P(ModelStoreBackendTest, VersionsCountUpAndCarryTheirConfigAndMetadata) {
  auto v1 = testing::AddTestModel(*store_, "m", Config(), 1, {{"metrics", {{"val_iou", 0.5}}}});
  auto v2 = testing::AddTestModel(*store_, "m", Config(), 2);
  ASSERT_TRUE(v1.ok() && v2.ok()) << v1.status() << v2.status();
  EXPECT_EQ(v1->version, 1);
  EXPECT_EQ(v2->version, 2);
  EXPECT_EQ(store_->Get("m", 0)->version, 2);
  EXPECT_EQ(store_->Get("m", 3).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Get("x", 0).status().code(), absl::StatusCode::kNotFound);
  // What another instance reads back from the durable state is what was written.
  std::unique_ptr<ModelStore> other = OpenAnother();
  ASSERT_NE(other, nullptr);
  auto read = other->Get("m", 1);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->config.skip_prune_level, 1);
  EXPECT_EQ(read->config.classes, 2);
  EXPECT_DOUBLE_EQ(read->metadata["metrics"]["val_iou"].get<double>(), 0.5);
  EXPECT_EQ(read->checkpoint_sha256, v1->checkpoint_sha256);
  EXPECT_EQ(read->checkpoint_bytes, v1->checkpoint_bytes);
  EXPECT_EQ(read->created_unix_seconds, v1->created_unix_seconds);
  EXPECT_GT(read->disk_bytes, 0);
  EXPECT_EQ(other->List().size(), 2u);
}

TEST_P(ModelStoreBackendTest, ABrokenCheckpointIsRefusedAndLeavesNothingBehind) {
  auto good = testing::AddTestModel(*store_, "m", Config(), 1);
  ASSERT_TRUE(good.ok());
  const std::string bytes = *common::ReadFile(*store_->CheckpointFile(*good));
  ASSERT_TRUE(store_->Delete("m", 1).ok());
  EXPECT_EQ(store_->AddVersion("m", "not a checkpoint").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->AddVersion("m", bytes.substr(0, bytes.size() / 2)).status().code(),
            absl::StatusCode::kDataLoss);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x40;
  auto refused = store_->AddVersion("m", flipped);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(refused.status().message().find("checksum"), std::string::npos) << refused.status();
  EXPECT_TRUE(store_->List().empty());
  EXPECT_EQ(*factory_.BlobCount(), 0);
}

TEST_P(ModelStoreBackendTest, ConcurrentAddsFromTwoInstancesGetDistinctVersions) {
  std::unique_ptr<ModelStore> other = OpenAnother();
  ASSERT_NE(other, nullptr);
  auto first = testing::AddTestModel(*store_, "m", Config(), 1);
  ASSERT_TRUE(first.ok()) << first.status();
  auto file = store_->CheckpointFile(*first);
  ASSERT_TRUE(file.ok()) << file.status();
  const std::string bytes = *common::ReadFile(*file);
  std::vector<int64_t> versions(6);
  std::vector<std::thread> writers;
  for (int i = 0; i < 6; ++i) {
    writers.emplace_back([&, i] {
      auto stored = (i % 2 ? store_ : other)->AddVersion("m", bytes);
      versions[i] = stored.ok() ? stored->version : -1;
    });
  }
  for (auto& t : writers) t.join();
  std::sort(versions.begin(), versions.end());
  EXPECT_EQ(versions, (std::vector<int64_t>{2, 3, 4, 5, 6, 7}));
  ASSERT_TRUE(store_->Refresh().ok());
  EXPECT_EQ(store_->List().size(), 7u);
  EXPECT_EQ(*factory_.BlobCount(), 7);
}

TEST_P(ModelStoreBackendTest, AliasesAndVersionsOfAnotherInstanceAppearOnRefresh) {
  std::unique_ptr<ModelStore> other = OpenAnother();
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(testing::AddTestModel(*other, "m", Config(), 1).ok());
  ASSERT_TRUE(other->SetAlias("baseline", {"m", 1}).ok());
  ASSERT_TRUE(other->SetAlias("latest", {"m", 0}).ok());
  ASSERT_TRUE(other->SetAlias("baseline", {"m", 0}).ok());  // moved
  if (factory_.postgres()) {
    // (Files: the stores of one directory in a process share their tables.)
    EXPECT_TRUE(store_->List().empty()) << "reads answer from the tables until a refresh";
  }
  ASSERT_TRUE(store_->Refresh().ok());
  ASSERT_EQ(store_->List().size(), 1u);
  const AliasTable aliases = store_->Aliases();
  ASSERT_EQ(aliases.size(), 2u);
  EXPECT_EQ(aliases.at("baseline").name, "m");
  EXPECT_EQ(aliases.at("baseline").version, 0);
  EXPECT_EQ(store_->SetAlias("bad name", {"m", 0}).code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(ModelStoreBackendTest, TheBackgroundRefreshPicksUpAnotherInstancesVersion) {
  if (!factory_.postgres()) {
    GTEST_SKIP() << "files: the first Open of a directory decides (model_store_tables_test)";
  }
  absl::Notification refreshed_with_version;
  ModelStore* watched = nullptr;
  ModelStoreOptions options;
  options.refresh_interval = absl::Milliseconds(50);
  options.after_refresh_for_testing = [&] {
    if (watched != nullptr && !watched->List().empty() &&
        !refreshed_with_version.HasBeenNotified()) {
      refreshed_with_version.Notify();
    }
  };
  std::unique_ptr<ModelStore> follower = OpenAnother(options);
  ASSERT_NE(follower, nullptr);
  watched = follower.get();
  ASSERT_TRUE(testing::AddTestModel(*store_, "m", Config(), 1).ok());
  EXPECT_TRUE(refreshed_with_version.WaitForNotificationWithTimeout(absl::Seconds(60)));
  follower.reset();  // stops the thread before `watched` dangles
}

TEST_P(ModelStoreBackendTest, AVersionLoadsAndServesThroughTheRegistry) {
  ASSERT_TRUE(testing::AddTestModel(*store_, "m", Config(), 1).ok());
  std::unique_ptr<ModelStore> other = OpenAnother();
  ASSERT_NE(other, nullptr);
  ModelRegistry registry(*other, loader_, metrics_);
  auto loaded = registry.Load("m", 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto resolved = registry.Resolve("m", 1);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  auto output = (*resolved)->servable->Forward(torch::zeros({1, 3, 64, 64}));
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_EQ(output->size(1), 2);
}

TEST_P(ModelStoreBackendTest, ACorruptedBlobIsNotServedAndTheVersionSaysWhy) {
  auto stored = testing::AddTestModel(*store_, "m", Config(), 1);
  ASSERT_TRUE(stored.ok());
  ASSERT_NO_FATAL_FAILURE(CorruptBlob(*stored));
  ModelRegistry registry(*store_, loader_, metrics_);
  auto loaded = registry.Load("m", 1);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
  auto status = registry.Get("m", 1);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, LoadState::kFailed);
  EXPECT_FALSE(status->load_error.empty());
  EXPECT_EQ(registry.Resolve("m", 1).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(ModelStoreBackendTest, AMissingBlobIsNotServedAndTheVersionSaysWhy) {
  auto stored = testing::AddTestModel(*store_, "m", Config(), 1);
  ASSERT_TRUE(stored.ok());
  ASSERT_NO_FATAL_FAILURE(RemoveBlob(*stored));
  ModelRegistry registry(*store_, loader_, metrics_);
  auto loaded = registry.Load("m", 1);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(
      loaded.status().message().find(GetParam() == StoreBackend::kFiles ? "model.ckpt" : "missing"),
      std::string::npos)
      << loaded.status();
  EXPECT_EQ(registry.Get("m", 1)->state, LoadState::kFailed);
  // It can still be deleted.
  EXPECT_TRUE(store_->Delete("m", 1).ok());
  EXPECT_TRUE(store_->List().empty());
}

INSTANTIATE_TEST_SUITE_P(Files, ModelStoreBackendTest, ::testing::Values(StoreBackend::kFiles));
INSTANTIATE_TEST_SUITE_P(Postgres, ModelStoreBackendTest,
                         ::testing::Values(StoreBackend::kPostgresDirectory,
                                           StoreBackend::kPostgresLargeObject));

// PostgreSQL only.
class PostgresModelStoreTest : public ModelStoreBackendTest {
 protected:
  // Ends the store's server session (as a database restart or a network cut would).
  void TerminateStoreSessions() {
    auto admin = factory_.Admin();
    ASSERT_TRUE(admin.ok()) << admin.status();
    ASSERT_TRUE((*admin)
                    ->ExecSql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                              "datname = current_database() AND pid <> pg_backend_pid()")
                    .ok());
  }
};

TEST_P(PostgresModelStoreTest, AReplicaOnAnotherNodeServesFromLargeObjectsWithoutASharedVolume) {
  if (GetParam() != StoreBackend::kPostgresLargeObject) GTEST_SKIP() << "large objects only";
  auto stored = testing::AddTestModel(*store_, "m", Config(), 1);
  ASSERT_TRUE(stored.ok());
  testing::TempDir elsewhere;
  auto replica = factory_.OpenElsewhere(elsewhere.path(), testing::NoBackgroundRefresh());
  ASSERT_TRUE(replica.ok()) << replica.status();
  auto file = (*replica)->CheckpointFile(*(*replica)->Get("m", 1));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->rfind(elsewhere.path(), 0), 0u) << *file << ": a local cache copy";
  EXPECT_EQ(common::Sha256Hex(*common::ReadFile(*file)), stored->checkpoint_sha256);
  // Deleting the version (from the first node) removes the replica's cached copy on its
  // next refresh.
  ASSERT_TRUE(store_->Delete("m", 1).ok());
  ASSERT_TRUE((*replica)->Refresh().ok());
  EXPECT_FALSE(fs::exists(*file));
}

TEST_P(PostgresModelStoreTest, AWriteThatDiesBeforeCommitLeavesNoVersionAndNoBlob) {
  ModelStoreOptions options = testing::NoBackgroundRefresh();
  bool kill = true;
  options.before_commit_for_testing = [&](const std::string&) {
    if (kill) TerminateStoreSessions();
  };
  auto store = factory_.Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  auto failed = testing::AddTestModel(**store, "m", Config(), 1);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable) << failed.status();
  EXPECT_NE(failed.status().message().find("model registry database"), std::string::npos)
      << failed.status();
  ASSERT_TRUE(store_->Refresh().ok());
  EXPECT_TRUE(store_->List().empty());
  if (GetParam() == StoreBackend::kPostgresLargeObject) {
    EXPECT_EQ(*factory_.BlobCount(), 0) << "the large object went with the transaction";
  } else {
    // The outcome of a lost commit is unknown to the writer, so it keeps its file; the next
    // Open removes it once it is old enough not to be another replica's write in flight.
    ASSERT_EQ(*factory_.BlobCount(), 1);
    for (const auto& entry : fs::recursive_directory_iterator(factory_.data_dir() + "/blobs")) {
      if (!entry.is_regular_file()) continue;
      fs::last_write_time(entry.path(), fs::file_time_type::clock::now() - std::chrono::hours(2));
    }
    ASSERT_NE(OpenAnother(), nullptr);
    EXPECT_EQ(*factory_.BlobCount(), 0) << "the orphaned blob file was removed";
  }
  // The writer reconnects; the number was not used.
  kill = false;
  auto retried = testing::AddTestModel(**store, "m", Config(), 1);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->version, 1);
  EXPECT_EQ(*factory_.BlobCount(), 1);
}

TEST_P(PostgresModelStoreTest, TheBackgroundRefreshRemovesOldUnreferencedBlobFiles) {
  if (GetParam() != StoreBackend::kPostgresDirectory) GTEST_SKIP() << "blob files only";
  auto stored = testing::AddTestModel(*store_, "m", Config(), 1);
  ASSERT_TRUE(stored.ok()) << stored.status();
  // What a writer killed between its blob and its row leaves, one old, one recent.
  const std::string dir = factory_.data_dir() + "/blobs/models/m";
  const std::string old_file = dir + "/killed-writer.ckpt", young_file = dir + "/in-flight.ckpt";
  std::ofstream(young_file) << "another replica's write";
  ModelStoreOptions options;
  options.refresh_interval = absl::Milliseconds(20);
  options.orphan_sweep_interval = absl::Milliseconds(50);
  std::atomic<int> refreshes{0};
  options.after_refresh_for_testing = [&] { ++refreshes; };
  auto store = factory_.Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  // Left after this replica's Open (which sweeps too): only its background thread sees it.
  std::ofstream(old_file) << "orphan";
  fs::last_write_time(old_file, fs::file_time_type::clock::now() - std::chrono::hours(2));
  for (int i = 0; i < 500 && fs::exists(old_file); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(fs::exists(old_file)) << "not removed by the background refresh";
  EXPECT_GT(refreshes.load(), 0);
  EXPECT_TRUE(fs::exists(young_file)) << "a recent file may be a write in flight";
  EXPECT_TRUE(fs::exists(stored->checkpoint_path)) << "a referenced blob";
}

TEST_P(PostgresModelStoreTest, ReplicasStartingAtOnceMigrateOnce) {
  if (GetParam() != StoreBackend::kPostgresDirectory) GTEST_SKIP() << "one backend is enough";
  StoreFactory fresh(GetParam());  // a database nobody migrated yet
  std::vector<absl::Status> opened(4);
  std::vector<std::thread> replicas;
  for (int i = 0; i < 4; ++i) {
    replicas.emplace_back([&, i] { opened[i] = fresh.Open(testing::NoBackgroundRefresh()).status(); });
  }
  for (auto& t : replicas) t.join();
  for (const absl::Status& s : opened) EXPECT_TRUE(s.ok()) << s;
  auto admin = fresh.Admin();
  ASSERT_TRUE(admin.ok());
  auto rows = (*admin)->ExecSql("SELECT count(*) FROM schema_version WHERE component = 'registry'");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->Int(0, 0), static_cast<int64_t>(PostgresModelStore::Migrations().size()));
}

TEST_P(PostgresModelStoreTest, ReadsKeepAnsweringWhileTheDatabaseIsGoneAndWritesSayWhy) {
  if (GetParam() != StoreBackend::kPostgresLargeObject) GTEST_SKIP() << "one backend is enough";
  ASSERT_TRUE(testing::AddTestModel(*store_, "m", Config(), 1).ok());
  ASSERT_TRUE(store_->SetAlias("baseline", {"m", 1}).ok());
  ASSERT_NO_FATAL_FAILURE(TerminateStoreSessions());
  auto server = testing::SharedPostgresServer();
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->StopServer().ok());
  EXPECT_TRUE(store_->Get("m", 1).ok());
  EXPECT_EQ(store_->Aliases().size(), 1u);
  absl::Status refresh = store_->Refresh();
  EXPECT_EQ(refresh.code(), absl::StatusCode::kUnavailable) << refresh;
  auto add = testing::AddTestModel(*store_, "m", Config(), 2);
  EXPECT_EQ(add.status().code(), absl::StatusCode::kUnavailable) << add.status();
  EXPECT_NE(add.status().message().find("model registry database"), std::string::npos);
  ASSERT_TRUE((*server)->StartServer().ok());
  // Recovers on its own (after the reconnect back-off).
  absl::StatusOr<StoredVersion> again = absl::UnavailableError("not tried");
  for (int i = 0; i < 100 && !again.ok(); ++i) {
    again = testing::AddTestModel(*store_, "m", Config(), 2);
    if (!again.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->version, 2);
}

INSTANTIATE_TEST_SUITE_P(Postgres, PostgresModelStoreTest,
                         ::testing::Values(StoreBackend::kPostgresDirectory,
                                           StoreBackend::kPostgresLargeObject));

}  // namespace
}  // namespace segserve::registry
