// segctl auth: makes bearer tokens and the hashed lines of segserve's --auth_tokens_file.
// Nothing here talks to the server: tokens are created where the operator is, the server
// only ever sees their SHA-256 (then `kill -HUP` it to pick up the new line).
#include <sys/stat.h>

#include <filesystem>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/segctl/args.h"
#include "client/segctl/commands.h"
#include "server/auth/token_file.h"
#include "server/common/file_util.h"

namespace segserve::segctl {
namespace {

constexpr char kUsage[] =
    "usage: segctl auth new-token --name NAME --role ROLE [--append FILE]\n"
    "       segctl auth hash-token --name NAME --role ROLE   (token on stdin)\n\n"
    "new-token prints a new random token (stdout, line 1) and its tokens-file line\n"
    "(line 2); --append adds the line to FILE (created 0600) instead of printing it.\n"
    "hash-token prints the tokens-file line for an existing token read from stdin.\n"
    "ROLE: viewer (list, get, watch), segmenter (+ segment, analyze), trainer (+ submit,\n"
    "cancel, generate data sets), admin (+ load, unload, import, aliases).\n"
    "The server re-reads its tokens file on SIGHUP.\n";

// Appends `line` to the tokens file: the whole file is rewritten atomically so that a
// concurrent SIGHUP never sees half a line.
absl::Status AppendLine(const std::string& path, const std::string& line) {
  std::string contents = "# segserve tokens: name role sha256:<hex of the token>\n";
  if (std::filesystem::exists(path)) {
    auto existing = common::ReadFile(path);
    if (!existing.ok()) return existing.status();
    contents = std::move(*existing);
    if (!contents.empty() && contents.back() != '\n') contents.push_back('\n');
  }
  contents += line + "\n";
  // The server must accept the result (no duplicate name or token, no broken line).
  if (auto parsed = auth::ParseTokenFile(contents, path); !parsed.ok()) return parsed.status();
  if (absl::Status s = common::WriteFileAtomically(path, contents); !s.ok()) return s;
  if (chmod(path.c_str(), 0600) != 0) {
    return absl::InternalError(absl::StrCat(path, ": chmod 0600 failed"));
  }
  return absl::OkStatus();
}

}  // namespace

int RunAuth(const GlobalOptions&, const std::vector<std::string>& argv, std::ostream& out,
            std::ostream& err) {
  auto args = Args::Parse(argv, {"name", "role", "append"}, {"help"});
  if (!args.ok()) {
    err << "segctl auth: " << args.status().message() << "\n" << kUsage;
    return kExitUsage;
  }
  if (args->Has("help")) {
    out << kUsage;
    return kExitOk;
  }
  if (args->positional().size() != 1 ||
      (args->positional()[0] != "new-token" && args->positional()[0] != "hash-token")) {
    err << kUsage;
    return kExitUsage;
  }
  const std::string name = args->Get("name");
  if (!auth::IsValidTokenName(name)) {
    err << "segctl auth: --name: 1-64 characters of [A-Za-z0-9._@-] required\n";
    return kExitUsage;
  }
  std::optional<auth::Role> role = auth::ParseRole(args->Get("role"));
  if (!role) {
    err << "segctl auth: --role: viewer, segmenter, trainer or admin required\n";
    return kExitUsage;
  }
  std::string token;
  if (args->positional()[0] == "new-token") {
    auto generated = auth::GenerateToken();
    if (!generated.ok()) return ReportError(err, generated.status());
    token = *generated;
  } else {
    std::getline(std::cin, token);
    token = std::string(absl::StripAsciiWhitespace(token));
    if (token.empty()) {
      err << "segctl auth hash-token: no token on stdin\n";
      return kExitUsage;
    }
  }
  const std::string line = auth::TokenLine(name, *role, token);
  if (args->Has("append")) {
    if (absl::Status s = AppendLine(args->Get("append"), line); !s.ok()) {
      return ReportError(err, s);
    }
    if (args->positional()[0] == "new-token") out << token << "\n";
    err << "added '" << name << "' (" << auth::RoleName(*role) << ") to " << args->Get("append")
        << "; send SIGHUP to segserve to load it\n";
    return kExitOk;
  }
  if (args->positional()[0] == "new-token") out << token << "\n";
  out << line << "\n";
  return kExitOk;
}

}  // namespace segserve::segctl
