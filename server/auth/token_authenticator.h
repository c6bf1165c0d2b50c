// File: server/auth/token_authenticator.h — checks bearer tokens against the tokens file.
// The presented token is hashed (SHA-256) and compared with every stored hash in constant
// time (CRYPTO_memcmp, no early exit), so neither the token nor its hash can be learnt from
// response times; the table is swapped whole on Reload (SIGHUP), so a bad edit of the file
// keeps the tokens that were in force.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/auth/role.h"
#include "server/common/sha256.h"

namespace segserve::auth {

struct Identity {
  std::string name;  // the token's name in the tokens file.
  Role role = Role::kViewer;
};

// Why a request was not authenticated; also the `reason` label of
// segserve_auth_failures_total.
enum class AuthFailure { kMissing, kMalformed, kUnknownToken };
const char* AuthFailureReason(AuthFailure failure);

class TokenAuthenticator {
 public:
  // Reads and parses `path`; an unreadable or invalid file is an error.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> FromFile(const std::string& path);

  // Re-reads the file. On error the current tokens stay in force.
  absl::Status Reload();

  // The identity for the value of an `authorization` header ("Bearer <token>"); on
  // failure `*failure` says why and the status is UNAUTHENTICATED.
  absl::StatusOr<Identity> Authenticate(std::string_view authorization, AuthFailure* failure) const;

  size_t size() const;
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    common::Sha256Digest token_sha256;
    Identity identity;
  };
  using Table = std::vector<Entry>;
  explicit TokenAuthenticator(std::string path) : path_(std::move(path)) {}
  static absl::StatusOr<std::shared_ptr<const Table>> ReadTable(const std::string& path);

  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Table> table_ ABSL_GUARDED_BY(mu_);
};

}  // namespace segserve::auth
