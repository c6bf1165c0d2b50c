// segctl auth: makes bearer tokens and the hashed lines of segserve's --auth_tokens_file.
// Nothing here talks to the server: tokens are created where the operator is, the server
// only ever sees their SHA-256 (then `kill -HUP` it to pick up the new line).
#include <sys/stat.h>

#include <filesystem>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/segctl/commands.h"
#include "server/auth/token_file.h"
#include "server/common/file_util.h"

namespace segserve::segctl {
namespace {

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

struct Options {
  std::string name, role, append;
};

int MakeLine(const Options& o, bool new_token, std::ostream& out, std::ostream& err) {
  const std::optional<auth::Role> role = auth::ParseRole(o.role);  // checked while parsing
  std::string token;
  if (new_token) {
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
  const std::string line = auth::TokenLine(o.name, *role, token);
  if (!o.append.empty()) {
    if (absl::Status s = AppendLine(o.append, line); !s.ok()) return ReportError(err, s);
    if (new_token) out << token << "\n";
    err << "added '" << o.name << "' (" << auth::RoleName(*role) << ") to " << o.append
        << "; send SIGHUP to segserve to load it\n";
    return kExitOk;
  }
  if (new_token) out << token << "\n";
  out << line << "\n";
  return kExitOk;
}

void AddTokenCommand(CLI::App* auth, Invocation& invocation, bool new_token) {
  auto o = std::make_shared<Options>();
  CLI::App* command =
      new_token ? auth->add_subcommand("new-token",
                                       "print a new random token and its tokens-file line")
                : auth->add_subcommand("hash-token",
                                       "print the tokens-file line of a token read from stdin");
  command->add_option("--name", o->name, "the token's name (1-64 of [A-Za-z0-9._@-])")
      ->required()
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            return auth::IsValidTokenName(value) ? "" : "1-64 characters of [A-Za-z0-9._@-]";
          },
          "NAME", "token_name"));
  command->add_option("--role", o->role, "what the token may do")
      ->required()
      ->check(CLI::IsMember({"viewer", "segmenter", "trainer", "admin"}));
  command->add_option("--append", o->append,
                      "add the line to this tokens file (created 0600) instead of printing it");
  if (new_token) {
    SetExamples(command,
                {"segctl auth new-token --name pipeline-a --role segmenter --append var/tokens",
                 "segctl auth new-token --name ops --role admin"},
                "Prints the token (stdout, line 1) and, without --append, its line (line 2).\n"
                "The server re-reads its tokens file on SIGHUP.");
  } else {
    SetExamples(command, {"segctl auth hash-token --name ci --role trainer < ci.token"});
  }
  SetAction(command, invocation,
            [o, new_token](const GlobalOptions&, std::ostream& out, std::ostream& err) {
              return MakeLine(*o, new_token, out, err);
            });
}

}  // namespace

void AddAuthCommands(CLI::App& segctl, Invocation& invocation) {
  CLI::App* auth = segctl.add_subcommand(
      "auth", "make bearer tokens and lines of the server's tokens file");
  auth->require_subcommand(1);
  SetExamples(auth, {"segctl auth new-token --name pipeline-a --role segmenter --append var/tokens"},
              "ROLE: viewer (list, get, watch), segmenter (+ segment, analyze), trainer\n"
              "(+ submit, cancel, generate data sets), admin (+ load, unload, import, aliases).\n"
              "Nothing here talks to the server.");
  AddTokenCommand(auth, invocation, true);
  AddTokenCommand(auth, invocation, false);
}

}  // namespace segserve::segctl
