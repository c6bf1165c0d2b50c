// The data-set index (server/data/dataset_index.h): one contract, run against the directory
// index and the PostgreSQL one (a real PostgreSQL from tests/testing/postgres_server.h;
// the Postgres* suites run as the ctest entry dataset_index_test.Postgres), then what only
// the shared table does: replicas without the folder, adoption after a crash, schema.
#include "server/data/dataset_index.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "server/data/postgres_dataset_index.h"
#include "server/data/synthetic.h"
#include "tests/data/temp_dir.h"
#include "tests/testing/postgres_server.h"

namespace segserve::data {
namespace {
namespace fs = std::filesystem;

enum class IndexBackend { kDirectory, kPostgres };

void PrintTo(IndexBackend backend, std::ostream *os) {
  *os << (backend == IndexBackend::kPostgres ? "postgres" : "directory");
}

class DatasetIndexTest : public ::testing::TestWithParam<IndexBackend> {
 protected:
  void SetUp() override {
    if (GetParam() == IndexBackend::kPostgres) {
      absl::StatusOr<std::string> conninfo = segserve::testing::NewSharedDatabase();
      ASSERT_TRUE(conninfo.ok()) << conninfo.status();
      conninfo_ = *conninfo;
    }
    auto index = OpenAt(datasets_dir());
    ASSERT_TRUE(index.ok()) << index.status();
    index_ = *std::move(index);
  }

  std::string datasets_dir() const { return dir_ / "datasets"; }

  // Another index on the same database (or folder): another replica.
  absl::StatusOr<std::unique_ptr<DatasetIndex>> OpenAt(const std::string &dir) {
    DatasetIndexOptions options;
    options.database.conninfo = conninfo_;
    options.database.what = "data-set index database";
    return DatasetIndex::Open(dir, options);
  }

  // Generates set `name` (`count` images) published into `dir` as the runners do: written
  // under a hidden name, renamed into place; returns its entry.
  DatasetEntry Publish(const std::string &name, int count, const std::string &dir = "") {
    const std::string root = dir.empty() ? datasets_dir() : dir;
    SyntheticDatasetOptions options;
    options.count = count;
    options.sample.size = 32;
    options.name = name;
    const std::string staging = root + "/.tmp-" + name;
    EXPECT_TRUE(GenerateSyntheticDataset(staging, options).ok());
    fs::rename(staging, root + "/" + name);
    OpenOptions open;
    open.verify_contents = false;
    absl::StatusOr<Dataset> dataset = OpenDataset(root + "/" + name, open);
    EXPECT_TRUE(dataset.ok()) << dataset.status();
    return dataset.ok() ? EntryOf(name, *dataset) : DatasetEntry{};
  }

  std::vector<std::string> Names(DatasetIndex &index) {
    std::vector<std::string> names;
    absl::StatusOr<std::vector<DatasetEntry>> entries = index.List();
    EXPECT_TRUE(entries.ok()) << entries.status();
    if (entries.ok()) {
      for (const DatasetEntry &entry : *entries) names.push_back(entry.name);
    }
    return names;
  }

  testing::TempDir dir_;
  std::string conninfo_;
  std::unique_ptr<DatasetIndex> index_;
};

TEST_P(DatasetIndexTest, APublishedSetIsListedWithWhatItHolds) {
  EXPECT_TRUE(Names(*index_).empty());
  const DatasetEntry published = Publish("smears", 10);
  ASSERT_TRUE(index_->Record(published).ok());
  absl::StatusOr<std::vector<DatasetEntry>> entries = index_->List();
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 1u);
  const DatasetEntry &listed = (*entries)[0];
  EXPECT_EQ(listed.name, "smears");
  EXPECT_EQ(listed.images, 10);
  EXPECT_EQ(listed.channels, 3);
  EXPECT_EQ(listed.train + listed.val + listed.test, 10);
  EXPECT_EQ(listed.train, published.train);
  EXPECT_EQ(listed.class_names, published.class_names);
  EXPECT_GE(listed.class_names.size(), 2u);
  EXPECT_GT(listed.disk_bytes, 0);
  EXPECT_EQ(listed.disk_bytes, published.disk_bytes);
  EXPECT_GT(listed.created_unix_seconds, 0);
  absl::StatusOr<bool> contains = index_->Contains("smears");
  ASSERT_TRUE(contains.ok()) << contains.status();
  EXPECT_TRUE(*contains);
  EXPECT_FALSE(*index_->Contains("other"));
}

TEST_P(DatasetIndexTest, HiddenAndForeignFoldersAreNotListed) {
  ASSERT_TRUE(index_->Record(Publish("real", 4)).ok());
  fs::create_directories(datasets_dir() + "/.upload-abc.1/images");
  fs::create_directories(datasets_dir() + "/not-a-set/images");  // no dataset.json
  EXPECT_EQ(Names(*index_), std::vector<std::string>{"real"});
  // A name a folder holds is taken even when it is no data set (the rename would collide).
  EXPECT_TRUE(*index_->Contains("not-a-set"));
}

TEST_P(DatasetIndexTest, RecordIsIdempotentAndKeepsTheCreationTime) {
  DatasetEntry entry = Publish("twice", 4);
  ASSERT_TRUE(index_->Record(entry).ok());
  const int64_t created = (*index_->List())[0].created_unix_seconds;
  entry.created_unix_seconds += 1000;
  ASSERT_TRUE(index_->Record(entry).ok());
  absl::StatusOr<std::vector<DatasetEntry>> entries = index_->List();
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 1u);
  if (GetParam() == IndexBackend::kPostgres) EXPECT_EQ((*entries)[0].created_unix_seconds, created);
}

TEST_P(DatasetIndexTest, RemovedAfterItsFolderIsGoneAndRemoveIsIdempotent) {
  ASSERT_TRUE(index_->Record(Publish("gone", 4)).ok());
  fs::remove_all(datasets_dir() + "/gone");
  ASSERT_TRUE(index_->Remove("gone").ok());
  EXPECT_TRUE(Names(*index_).empty());
  EXPECT_FALSE(*index_->Contains("gone"));
  EXPECT_TRUE(index_->Remove("gone").ok());
  EXPECT_TRUE(index_->Remove("never-there").ok());
}

TEST_P(DatasetIndexTest, ASetPublishedWithoutItsRecordIsListed) {
  // The publisher died between its rename and Record (or the set was copied in by hand).
  Publish("orphan", 4);
  EXPECT_EQ(Names(*index_), std::vector<std::string>{"orphan"});
  EXPECT_TRUE(*index_->Contains("orphan"));
}

INSTANTIATE_TEST_SUITE_P(Directory, DatasetIndexTest, ::testing::Values(IndexBackend::kDirectory));
INSTANTIATE_TEST_SUITE_P(Postgres, DatasetIndexTest, ::testing::Values(IndexBackend::kPostgres));

// What only the table does.
class PostgresDatasetIndexTest : public DatasetIndexTest {};

TEST_P(PostgresDatasetIndexTest, AReplicaWithoutTheFolderListsAndChecksNamesFromTheTable) {
  ASSERT_TRUE(index_->Record(Publish("shared", 6)).ok());
  testing::TempDir elsewhere;  // another node: its own, empty disk
  auto replica = OpenAt(elsewhere / "datasets");
  ASSERT_TRUE(replica.ok()) << replica.status();
  absl::StatusOr<std::vector<DatasetEntry>> entries = (*replica)->List();
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0], (*index_->List())[0]);
  EXPECT_TRUE(*(*replica)->Contains("shared"));
  // A delete through the first replica reaches the other's listing.
  fs::remove_all(datasets_dir() + "/shared");
  ASSERT_TRUE(index_->Remove("shared").ok());
  EXPECT_TRUE(Names(**replica).empty());
}

TEST_P(PostgresDatasetIndexTest, OpenAdoptsFoldersItLacksAndNeverDropsRows) {
  index_.reset();
  Publish("before-database", 4);  // a single-box data dir's set, or a crash after a rename
  auto reopened = OpenAt(datasets_dir());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  testing::TempDir empty;
  auto other = OpenAt(empty / "datasets");  // a replica whose volume is empty
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(Names(**other), std::vector<std::string>{"before-database"});
  EXPECT_EQ(Names(**reopened), std::vector<std::string>{"before-database"});
}

TEST_P(PostgresDatasetIndexTest, AnUnreachableDatabaseFailsTheOpenSayingWhich) {
  DatasetIndexOptions options;
  options.database.conninfo = "host=/nonexistent-socket-dir dbname=x";
  options.database.what = "data-set index database";
  options.database.connect_timeout_s = 2;
  auto index = DatasetIndex::Open(datasets_dir(), options);
  ASSERT_FALSE(index.ok());
  EXPECT_EQ(index.status().code(), absl::StatusCode::kUnavailable) << index.status();
  EXPECT_NE(index.status().message().find("data-set index database"), std::string::npos)
      << index.status();
}

INSTANTIATE_TEST_SUITE_P(Postgres, PostgresDatasetIndexTest,
                         ::testing::Values(IndexBackend::kPostgres));

}  // namespace
}  // namespace segserve::data
