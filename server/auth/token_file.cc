#include "server/auth/token_file.h"

#include <sys/random.h>

#include <array>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/common/sha256.h"

namespace segserve::auth {
namespace {

constexpr std::string_view kHashPrefix = "sha256:";

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

bool IsValidTokenName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '@' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(std::string_view contents,
                                                       std::string_view source) {
  const absl::string_view src(source.data(), source.size());
  std::vector<TokenEntry> entries;
  std::set<std::string> names;
  std::set<std::string> hashes;
  int line_number = 0;
  for (absl::string_view raw :
       absl::StrSplit(absl::string_view(contents.data(), contents.size()), '\n')) {
    ++line_number;
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#') continue;
    const auto where = [&] { return absl::StrCat(src, ":", line_number, ": "); };
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), "expected 'name role sha256:<64 hex digits>', got ", fields.size(), " fields"));
    }
    TokenEntry entry;
    entry.name = std::string(fields[0]);
    if (!IsValidTokenName(entry.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "name '", entry.name, "': 1-64 characters of [A-Za-z0-9._@-]"));
    }
    std::optional<Role> role = ParseRole(std::string_view(fields[1].data(), fields[1].size()));
    if (!role) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), "role '", fields[1], "': must be viewer, segmenter, trainer or admin"));
    }
    entry.role = *role;
    absl::string_view hash = fields[2];
    if (!absl::ConsumePrefix(&hash, absl::string_view(kHashPrefix.data(), kHashPrefix.size())) ||
        hash.size() != 64 || !IsLowerHex(std::string_view(hash.data(), hash.size()))) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "token of '", entry.name,
                       "': must be sha256:<64 lower-case hex digits> (plain tokens are not stored; "
                       "`segctl auth hash-token` prints the line)"));
    }
    entry.sha256_hex = std::string(hash);
    if (!names.insert(entry.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "name '", entry.name, "' appears twice"));
    }
    if (!hashes.insert(entry.sha256_hex).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "the token of '", entry.name, "' is also another name's token"));
    }
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(src, ": no tokens"));
  }
  return entries;
}

std::string TokenLine(std::string_view name, Role role, std::string_view token) {
  return absl::StrCat(absl::string_view(name.data(), name.size()), " ", RoleName(role), " ",
                      absl::string_view(kHashPrefix.data(), kHashPrefix.size()),
                      common::Sha256Hex(token));
}

absl::StatusOr<std::string> GenerateToken() {
  std::array<unsigned char, 32> bytes;
  size_t filled = 0;
  while (filled < bytes.size()) {
    const ssize_t n = getrandom(bytes.data() + filled, bytes.size() - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError("getrandom failed");
    }
    filled += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token.push_back(kHex[b >> 4]);
    token.push_back(kHex[b & 15]);
  }
  return token;
}

}  // namespace segserve::auth
