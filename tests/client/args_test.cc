#include "client/segctl/args.h"

#include "gtest/gtest.h"

namespace segserve::segctl {
namespace {

TEST(Args, ParsesValuesBooleansAndPositionals) {
  auto args = Args::Parse({"a.png", "--model", "l1-pruned", "--out=masks", "--overlay", "b.png"},
                          {"model", "out"}, {"overlay"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("model"), "l1-pruned");
  EXPECT_EQ(args->Get("out"), "masks");
  EXPECT_TRUE(args->Has("overlay"));
  EXPECT_EQ(args->positional(), (std::vector<std::string>{"a.png", "b.png"}));
}

TEST(Args, UnderscoresAndDashesAreTheSameOption) {
  auto args = Args::Parse({"--prune_level", "1"}, {"prune-level"}, {});
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(*args->GetInt("prune-level", 0), 1);
}

TEST(Args, UnknownOptionsAndMissingValuesAreUsageErrors) {
  EXPECT_NE(Args::Parse({"--modle", "x"}, {"model"}, {}).status().message().find("--modle"),
            std::string::npos);
  EXPECT_NE(Args::Parse({"--model"}, {"model"}, {}).status().message().find("needs a value"),
            std::string::npos);
  auto args = Args::Parse({"--n", "ten"}, {"n"}, {});
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->GetInt("n", 0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segserve::segctl
