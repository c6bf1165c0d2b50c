// File: server/auth/token_file.h — the tokens file behind --auth_tokens_file. One token
// per line, stored hashed so that the file (or a backup of it) does not reveal tokens:
//
//   # name      role       SHA-256 of the token
//   pipeline-a  segmenter  sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//
// Names are 1-64 characters of [A-Za-z0-9._@-]; roles are viewer, segmenter, trainer and
// admin. `segctl auth new-token` makes a token and its line.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/auth/role.h"

namespace segserve::auth {

struct TokenEntry {
  std::string name;
  Role role = Role::kViewer;
  std::string sha256_hex;  // 64 lower-case hex digits.
};

// Parses a tokens file. Errors name the source, the line and what is wrong; a file with
// no tokens is an error (it would lock everybody out without saying why).
absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(std::string_view contents,
                                                       std::string_view source);

// The tokens-file line for `token` ("name role sha256:<hex>").
std::string TokenLine(std::string_view name, Role role, std::string_view token);

// A new random token: 32 bytes from the kernel's CSPRNG, as 64 hex digits.
absl::StatusOr<std::string> GenerateToken();

// Whether `name` is a valid token name.
bool IsValidTokenName(std::string_view name);

}  // namespace segserve::auth
