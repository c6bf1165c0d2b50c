#include "server/auth/token_file.h"

#include "gtest/gtest.h"
#include "server/common/sha256.h"

namespace segserve::auth {
namespace {

const std::string kHash = "sha256:" + common::Sha256Hex("t1");
const std::string kHash2 = "sha256:" + common::Sha256Hex("t2");

TEST(TokenFileTest, ParsesNamesRolesAndHashesSkippingCommentsAndBlankLines) {
  auto entries = ParseTokenFile(
      "# comment\n\n  ci  trainer\t" + kHash + "  \nops admin " + kHash2 + "\n", "tokens");
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].name, "ci");
  EXPECT_EQ((*entries)[0].role, Role::kTrainer);
  EXPECT_EQ((*entries)[0].sha256_hex, common::Sha256Hex("t1"));
  EXPECT_EQ((*entries)[1].role, Role::kAdmin);
}

TEST(TokenFileTest, ErrorsNameTheFileTheLineAndTheProblem) {
  struct Case {
    std::string contents, expected;
  };
  for (const Case& c : std::vector<Case>{
           {"ci trainer\n", "tokens:1: expected 'name role sha256:<64 hex digits>', got 2"},
           {"# x\nci boss " + kHash + "\n", "tokens:2: role 'boss'"},
           {"c/i viewer " + kHash + "\n", "tokens:1: name 'c/i'"},
           {"ci viewer plaintoken\n", "tokens:1: token of 'ci': must be sha256:"},
           {"ci viewer sha256:ABC\n", "tokens:1: token of 'ci'"},
           {"ci viewer " + kHash + "\nci admin " + kHash2 + "\n", "tokens:2: name 'ci' appears"},
           {"a viewer " + kHash + "\nb admin " + kHash + "\n", "tokens:2: the token of 'b'"},
           {"# only comments\n", "tokens: no tokens"},
       }) {
    auto entries = ParseTokenFile(c.contents, "tokens");
    ASSERT_FALSE(entries.ok()) << c.contents;
    EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(entries.status().message()).find(c.expected), std::string::npos)
        << entries.status().message() << " (expected '" << c.expected << "')";
  }
}

TEST(TokenFileTest, TokenLineRoundTripsAndGeneratedTokensDiffer) {
  auto token = GenerateToken();
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(token->size(), 64u);
  auto other = GenerateToken();
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*token, *other);
  auto entries = ParseTokenFile(TokenLine("bot", Role::kSegmenter, *token), "x");
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ((*entries)[0].sha256_hex, common::Sha256Hex(*token));
  EXPECT_EQ((*entries)[0].role, Role::kSegmenter);
}

// The line format is what operators' files already hold: the hash of "test" below is the
// example in token_file.h, written by the hand-written SHA-256 segserve had before OpenSSL.
TEST(TokenFileTest, TokenLineFormatIsUnchanged) {
  EXPECT_EQ(TokenLine("pipeline-a", Role::kSegmenter, "test"),
            "pipeline-a segmenter "
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
}

TEST(RoleTest, RolesAreOrdered) {
  EXPECT_TRUE(Permits(Role::kAdmin, Role::kViewer));
  EXPECT_TRUE(Permits(Role::kTrainer, Role::kSegmenter));
  EXPECT_TRUE(Permits(Role::kSegmenter, Role::kSegmenter));
  EXPECT_FALSE(Permits(Role::kSegmenter, Role::kTrainer));
  EXPECT_FALSE(Permits(Role::kViewer, Role::kSegmenter));
  EXPECT_EQ(ParseRole("admin"), Role::kAdmin);
  EXPECT_EQ(ParseRole("Admin"), std::nullopt);
}

}  // namespace
}  // namespace segserve::auth
