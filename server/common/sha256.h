// File: server/common/sha256.h — SHA-256 (FIPS 180-4) for checkpoint and file checksums and
// for bearer tokens at rest, computed by OpenSSL's libcrypto (EVP); no OpenSSL type leaks
// into this header. Also the constant-time comparison token checks use.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace segserve::common {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view data);
  // Finishes the hash; the object must not be updated afterwards.
  Sha256Digest Finish();

 private:
  struct Context;  // OpenSSL's EVP_MD_CTX, kept out of this header.
  std::unique_ptr<Context> context_;
};

// The SHA-256 of `data`.
Sha256Digest Sha256Of(std::string_view data);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// Lower-case hex of a digest.
std::string DigestHex(const Sha256Digest& digest);

// Lower-case hex SHA-256 of the file at `path`, read 1 MiB at a time. NotFound when it
// cannot be opened, DataLoss on a read error.
absl::StatusOr<std::string> FileSha256Hex(const std::string& path);

// Whether `a` and `b` are equal, in time that depends only on their sizes (CRYPTO_memcmp),
// so that comparing a secret-derived value leaks nothing through timing.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace segserve::common
