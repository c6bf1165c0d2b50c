#include "server/common/file_util.h"

#include <unistd.h>

#include <filesystem>
#include <iterator>
#include <string>

#include "gtest/gtest.h"

namespace segserve::common {
namespace {
namespace fs = std::filesystem;

class FileUtilTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/segserve_file_util_XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string root_;
};

TEST_F(FileUtilTest, AtomicWriteReplacesContentsAndLeavesNoTempFile) {
  const std::string path = root_ + "/a/b/file.txt";
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second").ok());
  EXPECT_EQ(*ReadFile(path), "second");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(root_ + "/a/b")) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(FileUtilTest, StreamedWriteAppearsWholeOnlyAtCommit) {
  const std::string path = root_ + "/c/streamed.bin";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  auto writer = AtomicFileWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Append("part one, ").ok());
  ASSERT_TRUE((*writer)->Append(std::string(1 << 20, 'x')).ok());
  EXPECT_EQ(*ReadFile(path), "old");  // readers still see the old file
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_EQ(*ReadFile(path), "part one, " + std::string(1 << 20, 'x'));
  EXPECT_EQ((*writer)->Append("late").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::distance(fs::directory_iterator(root_ + "/c"), fs::directory_iterator()), 1);
}

TEST_F(FileUtilTest, AStreamedWriteAbandonedBeforeCommitLeavesTheOldFileAndNoTemporary) {
  const std::string path = root_ + "/d/streamed.bin";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  {
    auto writer = AtomicFileWriter::Create(path);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Append("half a checkpoint").ok());
  }
  EXPECT_EQ(*ReadFile(path), "old");
  EXPECT_EQ(std::distance(fs::directory_iterator(root_ + "/d"), fs::directory_iterator()), 1);
}

TEST_F(FileUtilTest, ReadMissingFileIsNotFound) {
  EXPECT_EQ(ReadFile(root_ + "/missing").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FileUtilTest, ResolveUnderRootAcceptsPlainRelativePaths) {
  fs::create_directories(root_ + "/datasets/x");
  auto resolved = ResolveUnderRoot(root_, "datasets/x", "dataset");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(*resolved, fs::canonical(root_ + "/datasets/x").string());
}

TEST_F(FileUtilTest, ResolveUnderRootRefusesEscapes) {
  fs::create_directories(root_ + "/datasets");
  fs::create_directory_symlink("/etc", root_ + "/datasets/evil");
  for (const char* bad : {"/etc/passwd", "../x", "datasets/../../x", "datasets/evil/passwd", ""}) {
    auto resolved = ResolveUnderRoot(root_, bad, "spec.dataset");
    EXPECT_EQ(resolved.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(resolved.status().message().find("spec.dataset"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace segserve::common
