#include "server/auth/token_authenticator.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/auth/token_file.h"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"

namespace segserve::auth {
namespace {

// Tokens longer than this are not ours; reject before hashing attacker-sized input.
constexpr size_t kMaxTokenBytes = 512;

// 0-15 for a lower-case hex digit (ParseTokenFile accepts no others).
uint8_t HexValue(char c) { return static_cast<uint8_t>(c <= '9' ? c - '0' : c - 'a' + 10); }

}  // namespace

const char* AuthFailureReason(AuthFailure failure) {
  switch (failure) {
    case AuthFailure::kMissing:
      return "missing_token";
    case AuthFailure::kMalformed:
      return "malformed_header";
    case AuthFailure::kUnknownToken:
      return "invalid_token";
  }
  return "unknown";
}

absl::StatusOr<std::shared_ptr<const TokenAuthenticator::Table>> TokenAuthenticator::ReadTable(
    const std::string& path) {
  ASSIGN_OR_RETURN(std::string contents, common::ReadFile(path));
  ASSIGN_OR_RETURN(std::vector<TokenEntry> entries, ParseTokenFile(contents, path));
  auto table = std::make_shared<Table>();
  table->reserve(entries.size());
  for (TokenEntry& entry : entries) {
    Entry stored;
    // ParseTokenFile checked: 64 lower-case hex digits, no duplicate hashes.
    for (size_t i = 0; i < stored.token_sha256.size(); ++i) {
      stored.token_sha256[i] = static_cast<uint8_t>(HexValue(entry.sha256_hex[2 * i]) << 4 |
                                                    HexValue(entry.sha256_hex[2 * i + 1]));
    }
    stored.identity = Identity{std::move(entry.name), entry.role};
    table->push_back(std::move(stored));
  }
  return std::shared_ptr<const Table>(std::move(table));
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::FromFile(
    const std::string& path) {
  std::unique_ptr<TokenAuthenticator> authenticator(new TokenAuthenticator(path));
  RETURN_IF_ERROR(authenticator->Reload());
  return authenticator;
}

absl::Status TokenAuthenticator::Reload() {
  ASSIGN_OR_RETURN(std::shared_ptr<const Table> table, ReadTable(path_));
  absl::MutexLock lock(&mu_);
  table_ = std::move(table);
  return absl::OkStatus();
}

size_t TokenAuthenticator::size() const {
  absl::MutexLock lock(&mu_);
  return table_ ? table_->size() : 0;
}

absl::StatusOr<Identity> TokenAuthenticator::Authenticate(std::string_view authorization,
                                                          AuthFailure* failure) const {
  absl::string_view value(authorization.data(), authorization.size());
  if (value.empty()) {
    *failure = AuthFailure::kMissing;
    return absl::UnauthenticatedError(
        "authorization: missing; send the metadata 'authorization: Bearer <token>'");
  }
  // RFC 6750: the scheme is case-insensitive; one or more spaces before the token.
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    *failure = AuthFailure::kMalformed;
    return absl::UnauthenticatedError("authorization: expected 'Bearer <token>'");
  }
  absl::string_view token = absl::StripAsciiWhitespace(value.substr(kScheme.size()));
  if (token.empty() || token.size() > kMaxTokenBytes) {
    *failure = AuthFailure::kMalformed;
    return absl::UnauthenticatedError(
        absl::StrCat("authorization: the token must be 1-", kMaxTokenBytes, " bytes"));
  }
  std::shared_ptr<const Table> table;
  {
    absl::MutexLock lock(&mu_);
    table = table_;
  }
  // Every stored hash is compared in constant time and the scan never stops early: how long
  // a refusal takes says nothing about how close a guess was, nor which entry matched.
  const common::Sha256Digest presented =
      common::Sha256Of(std::string_view(token.data(), token.size()));
  const std::string_view presented_bytes(reinterpret_cast<const char*>(presented.data()),
                                         presented.size());
  const Entry* match = nullptr;
  for (const Entry& entry : *table) {
    const std::string_view stored(reinterpret_cast<const char*>(entry.token_sha256.data()),
                                  entry.token_sha256.size());
    if (common::ConstantTimeEquals(presented_bytes, stored)) match = &entry;
  }
  if (match == nullptr) {
    *failure = AuthFailure::kUnknownToken;
    return absl::UnauthenticatedError("authorization: invalid token");
  }
  return match->identity;
}

}  // namespace segserve::auth
