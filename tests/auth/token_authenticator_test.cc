#include "server/auth/token_authenticator.h"

#include <fstream>

#include "gtest/gtest.h"
#include "server/auth/token_file.h"
#include "tests/testing/server_process.h"

namespace segserve::auth {
namespace {

class TokenAuthenticatorTest : public ::testing::Test {
 protected:
  void Write(const std::string& contents) { std::ofstream(path_, std::ios::trunc) << contents; }
  testing::TempDir dir_;
  const std::string path_ = dir_.path() + "/tokens";
};

TEST_F(TokenAuthenticatorTest, AcceptsBearerTokensCaseInsensitiveScheme) {
  Write(TokenLine("ci", Role::kTrainer, "s3cret") + "\n");
  auto authenticator = TokenAuthenticator::FromFile(path_);
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  AuthFailure failure;
  for (const char* header : {"Bearer s3cret", "bearer s3cret", "BEARER   s3cret "}) {
    auto identity = (*authenticator)->Authenticate(header, &failure);
    ASSERT_TRUE(identity.ok()) << header << ": " << identity.status();
    EXPECT_EQ(identity->name, "ci");
    EXPECT_EQ(identity->role, Role::kTrainer);
  }
}

TEST_F(TokenAuthenticatorTest, RefusalsSayWhy) {
  Write(TokenLine("ci", Role::kViewer, "s3cret") + "\n");
  auto authenticator = TokenAuthenticator::FromFile(path_);
  ASSERT_TRUE(authenticator.ok());
  struct Case {
    std::string header;
    AuthFailure failure;
  };
  for (const Case& c :
       std::vector<Case>{{"", AuthFailure::kMissing},
                         {"s3cret", AuthFailure::kMalformed},
                         {"Basic czNjcmV0", AuthFailure::kMalformed},
                         {"Bearer ", AuthFailure::kMalformed},
                         {"Bearer " + std::string(600, 'x'), AuthFailure::kMalformed},
                         {"Bearer s3cret2", AuthFailure::kUnknownToken},
                         {"Bearer S3CRET", AuthFailure::kUnknownToken}}) {
    AuthFailure failure = AuthFailure::kMissing;
    auto identity = (*authenticator)->Authenticate(c.header, &failure);
    ASSERT_FALSE(identity.ok()) << c.header;
    EXPECT_EQ(identity.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(failure, c.failure) << c.header;
  }
}

TEST_F(TokenAuthenticatorTest, ReloadSwapsTokensAndABadFileKeepsTheOldOnes) {
  Write(TokenLine("old", Role::kViewer, "one") + "\n");
  auto authenticator = TokenAuthenticator::FromFile(path_);
  ASSERT_TRUE(authenticator.ok());
  AuthFailure failure;
  Write(TokenLine("new", Role::kAdmin, "two") + "\n");
  ASSERT_TRUE((*authenticator)->Reload().ok());
  EXPECT_FALSE((*authenticator)->Authenticate("Bearer one", &failure).ok());
  EXPECT_EQ((*authenticator)->Authenticate("Bearer two", &failure)->role, Role::kAdmin);
  Write("broken line\n");
  EXPECT_EQ((*authenticator)->Reload().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*authenticator)->Authenticate("Bearer two", &failure).ok());
  std::remove(path_.c_str());
  EXPECT_FALSE((*authenticator)->Reload().ok());
  EXPECT_TRUE((*authenticator)->Authenticate("Bearer two", &failure).ok());
}

TEST_F(TokenAuthenticatorTest, AMissingOrEmptyFileIsAStartupError) {
  EXPECT_FALSE(TokenAuthenticator::FromFile(path_).ok());
  Write("# nobody\n");
  auto authenticator = TokenAuthenticator::FromFile(path_);
  ASSERT_FALSE(authenticator.ok());
  EXPECT_NE(std::string(authenticator.status().message()).find("no tokens"), std::string::npos);
}

}  // namespace
}  // namespace segserve::auth
