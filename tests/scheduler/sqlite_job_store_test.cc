// SqliteJobStore-only behaviour on real files: corruption and the schema version in the
// file header. The JobStore contract both backends share is in job_store_test.cc.
#include "server/scheduler/sqlite_job_store.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/test_util.h"

namespace segserve::scheduler {
namespace {

using ::testing::HasSubstr;
using testing::MakeJob;
using testing::TempDir;

TEST(SqliteJobStore, NotADatabaseIsReportedAsDataLoss) {
  TempDir dir;
  std::ofstream(dir.db()) << std::string(8192, 'x');
  auto store = SqliteJobStore::Open(dir.db());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("is corrupt"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(dir.db()));
}

TEST(SqliteJobStore, DamagedPageIsDetectedAtOpen) {
  TempDir dir;
  {
    auto store = SqliteJobStore::Open(dir.db());
    ASSERT_TRUE(store.ok());
    std::vector<Job> jobs;
    for (int i = 0; i < 200; ++i) jobs.push_back(MakeJob("job-" + std::to_string(i)));
    ASSERT_TRUE((*store)->Insert(jobs).ok());
  }  // Closing the last connection checkpoints the WAL into the main file.
  {
    // Scribble over the second page (the jobs table's b-tree root).
    std::fstream file(dir.db(), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096 + 8);
    std::string garbage(1000, '\x7f');
    file.write(garbage.data(), garbage.size());
  }
  auto store = SqliteJobStore::Open(dir.db());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("move it aside"));
}

TEST(SqliteJobStore, NewerSchemaIsRefused) {
  TempDir dir;
  {
    auto store = SqliteJobStore::Open(dir.db());
    ASSERT_TRUE(store.ok());
  }
  {
    // Bump user_version the way a newer build would, through a second store's schema
    // check being bypassed: write the header field directly (offset 60, big-endian).
    std::fstream file(dir.db(), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(60);
    const char version[4] = {0, 0, 0, 9};
    file.write(version, 4);
  }
  auto store = SqliteJobStore::Open(dir.db());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("schema version 9"));
}

}  // namespace
}  // namespace segserve::scheduler
