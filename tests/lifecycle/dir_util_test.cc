// common/dir_util (issue 19): durable directory removal, tombstone cleanup, sizes, ages.
#include "server/common/dir_util.h"

#include "tests/lifecycle/fixture.h"

namespace segserve::common {
namespace {

namespace fs = std::filesystem;
using lifecycle::testing::WriteBytes;

TEST(DirUtilTest, RemoveDirectoryDurablyRemovesEverythingAndReportsBytes) {
  scheduler::testing::TempDir dir;
  WriteBytes(dir.path() + "/d/a", 10);
  WriteBytes(dir.path() + "/d/sub/b", 20);
  auto removed = RemoveDirectoryDurably(dir.path() + "/d");
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 30);
  EXPECT_TRUE(fs::is_empty(dir.path())) << "neither the directory nor a tombstone is left";
  EXPECT_EQ(RemoveDirectoryDurably(dir.path() + "/d").status().code(), absl::StatusCode::kNotFound);
}

TEST(DirUtilTest, RemoveTombstonesRemovesOnlyTombstones) {
  scheduler::testing::TempDir dir;
  WriteBytes(dir.path() + "/.deleted-x-1/a", 10);
  WriteBytes(dir.path() + "/keep/a", 10);
  WriteBytes(dir.path() + "/.tmp-1-2-3/a", 10);
  EXPECT_EQ(RemoveTombstones(dir.path()), 1);
  EXPECT_FALSE(fs::exists(dir.path() + "/.deleted-x-1"));
  EXPECT_TRUE(fs::exists(dir.path() + "/keep/a"));
  EXPECT_TRUE(fs::exists(dir.path() + "/.tmp-1-2-3/a"));
  EXPECT_EQ(RemoveTombstones(dir.path() + "/missing"), 0);
}

TEST(DirUtilTest, ParseAgeReadsUnitsAndRejectsTheRest) {
  EXPECT_EQ(ParseAge("30d", "f")->count(), 30 * 86400);
  EXPECT_EQ(ParseAge("1d12h", "f")->count(), 36 * 3600);
  EXPECT_EQ(ParseAge("90m", "f")->count(), 5400);
  EXPECT_EQ(ParseAge("2w", "f")->count(), 14 * 86400);
  EXPECT_EQ(ParseAge("45", "f")->count(), 45);
  EXPECT_EQ(ParseAge("0", "f")->count(), 0);
  for (const char* bad : {"", "d", "-1d", "3x", "1d5", "1.5h"}) {
    auto age = ParseAge(bad, "--older-than");
    EXPECT_EQ(age.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(age.status().message().find("--older-than"), std::string::npos);
  }
}

}  // namespace
}  // namespace segserve::common
