// The data-set index (server/data/dataset_index.h): one contract, run against the directory
// index and the PostgreSQL one, with and without the files in large objects (a real
// PostgreSQL from tests/testing/postgres_server.h; the Postgres* suites run as the ctest
// entry dataset_index_test.Postgres), then what only the shared table does: replicas
// without the folder, adoption after a crash, schema; and what the large objects do:
// replicas on their own disks fetch, drop and refetch sets through the database.
#include "server/data/dataset_index.h"

#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/dir_util.h"
#include "server/common/sha256.h"
#include "server/data/postgres_dataset_index.h"
#include "server/data/synthetic.h"
#include "server/postgres/connection.h"
#include "tests/data/temp_dir.h"
#include "tests/testing/postgres_server.h"

namespace segserve::data {
namespace {
namespace fs = std::filesystem;

enum class IndexBackend { kDirectory, kPostgres, kLargeObjects };

void PrintTo(IndexBackend backend, std::ostream *os) {
  *os << (backend == IndexBackend::kDirectory  ? "directory"
          : backend == IndexBackend::kPostgres ? "postgres"
                                               : "large_objects");
}

// Relative path -> SHA-256 of every regular file under `root` but the files marker.
std::map<std::string, std::string> FileDigests(const std::string &root) {
  std::map<std::string, std::string> digests;
  for (const auto &entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    const std::string rel = entry.path().lexically_relative(root).generic_string();
    if (rel == kFilesMarkerFile) continue;
    digests[rel] = *common::FileSha256Hex(entry.path().string());
  }
  return digests;
}

class DatasetIndexTest : public ::testing::TestWithParam<IndexBackend> {
 protected:
  void SetUp() override {
    if (GetParam() != IndexBackend::kDirectory) {
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
    return OpenAt(dir, GetParam() == IndexBackend::kLargeObjects);
  }
  absl::StatusOr<std::unique_ptr<DatasetIndex>> OpenAt(const std::string &dir,
                                                       bool files_in_database) {
    DatasetIndexOptions options;
    options.database.conninfo = conninfo_;
    options.database.what = "data-set index database";
    options.files_in_database = files_in_database;
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
  if (GetParam() != IndexBackend::kDirectory) {
    EXPECT_EQ((*entries)[0].created_unix_seconds, created);
  }
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

TEST_P(DatasetIndexTest, LocalDirAndChannelsNameTheFieldForBadAndMissingSets) {
  ASSERT_TRUE(index_->Record(Publish("here", 4)).ok());
  absl::StatusOr<std::string> dir = index_->LocalDir("here", "spec.dataset");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, datasets_dir() + "/here");
  EXPECT_EQ(*index_->Channels("here", "spec.dataset"), 3);
  for (const std::string bad : {"", "../here", ".", "..", ".hidden", "a/b"}) {
    absl::StatusOr<std::string> refused = index_->LocalDir(bad, "spec.dataset");
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StartsWith(refused.status().message(), "spec.dataset: ")) << refused.status();
  }
  absl::StatusOr<int> missing = index_->Channels("nope", "target.dataset.name");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "target.dataset.name: data set 'nope' not found under datasets/");
  EXPECT_EQ(index_->LocalDir("nope", "f").status().code(), absl::StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Directory, DatasetIndexTest, ::testing::Values(IndexBackend::kDirectory));
INSTANTIATE_TEST_SUITE_P(Postgres, DatasetIndexTest,
                         ::testing::Values(IndexBackend::kPostgres, IndexBackend::kLargeObjects));

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

// The files in large objects (--blob_store=large_object): every replica on its own disk.
class LargeObjectDatasetTest : public DatasetIndexTest {
 protected:
  // A replica with its own, empty disk.
  std::unique_ptr<DatasetIndex> Replica(testing::TempDir &disk) {
    auto replica = OpenAt(disk / "datasets");
    EXPECT_TRUE(replica.ok()) << replica.status();
    return replica.ok() ? *std::move(replica) : nullptr;
  }

  // A query on the test's own connection.
  postgres::Result Query(const std::string &sql) {
    if (db_ == nullptr) {
      postgres::ConnectOptions options;
      options.conninfo = conninfo_;
      auto db = postgres::Connection::Open(options);
      EXPECT_TRUE(db.ok()) << db.status();
      db_ = *std::move(db);
    }
    absl::StatusOr<postgres::Result> result = db_->ExecSql(sql);
    EXPECT_TRUE(result.ok()) << result.status() << " in " << sql;
    return *std::move(result);
  }
  int64_t LargeObjects() { return Query("SELECT count(*) FROM pg_largeobject_metadata").Int(0, 0); }

  std::unique_ptr<postgres::Connection> db_;
};

TEST_P(LargeObjectDatasetTest, AReplicaOnItsOwnDiskFetchesTheSetOnceWithEveryFileIntact) {
  ASSERT_TRUE(index_->Record(Publish("smears", 8)).ok());
  const std::string published = datasets_dir() + "/smears";
  EXPECT_FALSE(ReadFilesMarker(published).empty());
  const std::map<std::string, std::string> files = FileDigests(published);
  EXPECT_EQ(LargeObjects(), static_cast<int64_t>(files.size()));

  testing::TempDir disk;
  std::unique_ptr<DatasetIndex> replica = Replica(disk);
  ASSERT_NE(replica, nullptr);
  EXPECT_EQ(*replica->Channels("smears", "spec.dataset"), 3);  // from the row: nothing fetched
  EXPECT_FALSE(fs::exists(disk / "datasets/smears"));
  absl::StatusOr<std::string> dir = replica->LocalDir("smears", "spec.dataset");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, disk / "datasets/smears");
  EXPECT_EQ(FileDigests(*dir), files);
  EXPECT_EQ(ReadFilesMarker(*dir), ReadFilesMarker(published));
  OpenOptions open;
  open.verify_contents = true;  // every image decodes, every mask matches
  absl::StatusOr<Dataset> opened = OpenDataset(*dir, open);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->samples.size(), 8u);
  // Nothing hidden is left behind, and the copy is not fetched again.
  for (const auto &entry : fs::directory_iterator(disk / "datasets")) {
    EXPECT_EQ(entry.path().filename().string(), "smears");
  }
  const auto written = fs::last_write_time(*dir + "/dataset.json");
  ASSERT_TRUE(replica->LocalDir("smears", "spec.dataset").ok());
  EXPECT_EQ(fs::last_write_time(*dir + "/dataset.json"), written);
  // Its listing does not adopt the copy as a set of its own.
  EXPECT_EQ(Names(*replica), std::vector<std::string>{"smears"});
}

TEST_P(LargeObjectDatasetTest, CopiesFollowReplacementsAndDeletesMadeElsewhere) {
  ASSERT_TRUE(index_->Record(Publish("cells", 4)).ok());
  testing::TempDir disk;
  std::unique_ptr<DatasetIndex> replica = Replica(disk);
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(replica->LocalDir("cells", "spec.dataset").ok());

  // Deleted and published again through the first replica (lifecycle::DeleteDataset's
  // order: folder, then row): the other replica's older copy is replaced when next used.
  ASSERT_TRUE(common::RemoveDirectoryDurably(datasets_dir() + "/cells").ok());
  ASSERT_TRUE(index_->Remove("cells").ok());
  ASSERT_TRUE(index_->Record(Publish("cells", 6)).ok());
  absl::StatusOr<std::string> dir = replica->LocalDir("cells", "spec.dataset");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(FileDigests(*dir), FileDigests(datasets_dir() + "/cells"));
  EXPECT_EQ(OpenDataset(*dir)->samples.size(), 6u);

  // Deleted: the copy does not hold the name, and the objects are gone.
  ASSERT_TRUE(common::RemoveDirectoryDurably(datasets_dir() + "/cells").ok());
  ASSERT_TRUE(index_->Remove("cells").ok());
  EXPECT_EQ(LargeObjects(), 0);
  EXPECT_EQ(Query("SELECT count(*) FROM dataset_files").Int(0, 0), 0);
  EXPECT_FALSE(*replica->Contains("cells"));
  EXPECT_FALSE(fs::exists(disk / "datasets/cells"));
  EXPECT_EQ(replica->LocalDir("cells", "spec.dataset").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(LargeObjectDatasetTest, OfTwoSetsOfOneNameOnDifferentDisksTheFirstRecordedStays) {
  testing::TempDir disk;
  std::unique_ptr<DatasetIndex> other = Replica(disk);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(other->Record(Publish("cells", 6, disk / "datasets")).ok());
  const absl::Status second = index_->Record(Publish("cells", 4));
  EXPECT_EQ(second.code(), absl::StatusCode::kAlreadyExists) << second;
  // The losing folder is gone; the set that stays is fetched in its place.
  EXPECT_FALSE(fs::exists(datasets_dir() + "/cells"));
  absl::StatusOr<std::string> dir = index_->LocalDir("cells", "spec.dataset");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(FileDigests(*dir), FileDigests(disk / "datasets/cells"));
  EXPECT_EQ(Names(*index_), std::vector<std::string>{"cells"});
}

TEST_P(LargeObjectDatasetTest, SetsRecordedWithoutFilesAreStoredByAReplicaThatHasThem) {
  // A shared volume's set, recorded before --blob_store=large_object.
  auto plain = OpenAt(datasets_dir(), /*files_in_database=*/false);
  ASSERT_TRUE(plain.ok()) << plain.status();
  index_.reset();
  ASSERT_TRUE((*plain)->Record(Publish("old", 4)).ok());
  EXPECT_EQ(LargeObjects(), 0);
  testing::TempDir disk;
  std::unique_ptr<DatasetIndex> replica = Replica(disk);
  ASSERT_NE(replica, nullptr);
  absl::StatusOr<std::string> missing = replica->LocalDir("old", "spec.dataset");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StartsWith(missing.status().message(), "spec.dataset: data set 'old'"))
      << missing.status();
  // A replica with the folder and large objects stores the files when it opens (Reconcile).
  auto upgraded = OpenAt(datasets_dir(), /*files_in_database=*/true);
  ASSERT_TRUE(upgraded.ok()) << upgraded.status();
  EXPECT_GT(LargeObjects(), 0);
  absl::StatusOr<std::string> dir = replica->LocalDir("old", "spec.dataset");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(FileDigests(*dir), FileDigests(datasets_dir() + "/old"));
  // Re-recording without large objects keeps the stored files.
  ASSERT_TRUE((*plain)->Record(EntryOf("old", *OpenDataset(datasets_dir() + "/old"))).ok());
  EXPECT_EQ(Query("SELECT count(*) FROM datasets WHERE files_sha256 IS NULL").Int(0, 0), 0);
}

TEST_P(LargeObjectDatasetTest, ACorruptedObjectIsDataLossAndLeavesNothingBehind) {
  ASSERT_TRUE(index_->Record(Publish("bad", 4)).ok());
  Query(
      "SELECT lo_put(blob_oid, 0, '\\x00ff') FROM dataset_files WHERE dataset = 'bad' AND "
      "path = 'dataset.json'");
  testing::TempDir disk;
  std::unique_ptr<DatasetIndex> replica = Replica(disk);
  ASSERT_NE(replica, nullptr);
  absl::StatusOr<std::string> dir = replica->LocalDir("bad", "spec.dataset");
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kDataLoss) << dir.status();
  EXPECT_NE(dir.status().message().find("dataset.json"), std::string::npos) << dir.status();
  EXPECT_TRUE(fs::is_empty(disk / "datasets"));
}

INSTANTIATE_TEST_SUITE_P(Postgres, LargeObjectDatasetTest,
                         ::testing::Values(IndexBackend::kLargeObjects));

}  // namespace
}  // namespace segserve::data
