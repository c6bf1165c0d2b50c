// segctl: the command-line client of segserve.
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/segctl/args.h"
#include "client/segctl/commands.h"

namespace segserve::segctl {
namespace {

void PrintUsage(std::ostream& out) {
  out << "usage: segctl [global options] COMMAND [options]\n\n"
         "Global options (before COMMAND):\n"
         "  --server HOST:PORT   segserve address (default $SEGSERVE_ADDR or localhost:50051)\n"
         "  --timeout SECONDS    deadline of each call (default 30)\n"
         "  --token TOKEN        bearer token (default $SEGSERVE_TOKEN)\n"
         "  --token-file FILE    read the bearer token from FILE (keeps it out of ps)\n"
         "  --tls-ca FILE        trust this CA and use TLS\n"
         "  --tls-cert FILE      client certificate (mutual TLS)\n"
         "  --tls-key FILE       client key (mutual TLS)\n\n"
         "Commands:\n";
  for (const Command& command : Commands()) {
    out << "  " << command.name << std::string(16 - std::string(command.name).size(), ' ')
        << command.summary << "\n";
  }
  out << "\n'segctl COMMAND --help' describes a command. Exit codes: 0 ok, 1 error, 2 usage.\n";
}

}  // namespace

int ReportError(std::ostream& err, const absl::Status& status) {
  err << "segctl: " << absl::StatusCodeToString(status.code()) << ": " << status.message()
      << "\n";
  return kExitError;
}

int Main(int argc, char** argv) {
  std::vector<std::string> all(argv + 1, argv + argc);
  // Global options end at the first positional (the command).
  size_t command_at = 0;
  std::vector<std::string> global_args;
  static const std::set<std::string> kGlobalValues = {"server", "timeout", "token", "token-file",
                                                      "tls-ca", "tls-cert", "tls-key"};
  while (command_at < all.size() && all[command_at].rfind("--", 0) == 0) {
    global_args.push_back(all[command_at]);
    std::string name = all[command_at].substr(2);
    for (char& c : name) {
      if (c == '_') c = '-';
    }
    ++command_at;
    if (name.find('=') == std::string::npos && kGlobalValues.count(name) &&
        command_at < all.size()) {
      global_args.push_back(all[command_at++]);
    }
  }
  auto global_parsed = Args::Parse(global_args, kGlobalValues, {"help"});
  if (!global_parsed.ok()) {
    std::cerr << "segctl: " << global_parsed.status().message() << "\n\n";
    PrintUsage(std::cerr);
    return kExitUsage;
  }
  if (global_parsed->Has("help") || command_at >= all.size() || all[command_at] == "help") {
    PrintUsage(std::cout);
    return global_parsed->Has("help") || command_at < all.size() ? kExitOk : kExitUsage;
  }
  GlobalOptions global;
  const char* env_addr = std::getenv("SEGSERVE_ADDR");
  const char* env_token = std::getenv("SEGSERVE_TOKEN");
  global.client.target = global_parsed->Get("server", env_addr ? env_addr : "localhost:50051");
  global.client.token = global_parsed->Get("token", env_token ? env_token : "");
  if (global_parsed->Has("token-file")) {
    std::ifstream in(global_parsed->Get("token-file"));
    if (!in || !std::getline(in, global.client.token)) {
      std::cerr << "segctl: --token-file: cannot read '" << global_parsed->Get("token-file")
                << "'\n";
      return kExitUsage;
    }
    global.client.token = std::string(absl::StripAsciiWhitespace(global.client.token));
  }
  global.client.tls_ca = global_parsed->Get("tls-ca");
  global.client.tls_cert = global_parsed->Get("tls-cert");
  global.client.tls_key = global_parsed->Get("tls-key");
  auto timeout = global_parsed->GetDouble("timeout", 30);
  if (!timeout.ok() || *timeout <= 0) {
    std::cerr << "segctl: --timeout: expected a positive number of seconds\n";
    return kExitUsage;
  }
  global.client.timeout = std::chrono::milliseconds(static_cast<int64_t>(*timeout * 1000));

  const std::string name = all[command_at];
  const std::vector<std::string> rest(all.begin() + command_at + 1, all.end());
  for (const Command& command : Commands()) {
    if (name == command.name) return command.run(global, rest, std::cout, std::cerr);
  }
  std::cerr << "segctl: unknown command '" << name << "'\n\n";
  PrintUsage(std::cerr);
  return kExitUsage;
}

}  // namespace segserve::segctl

int main(int argc, char** argv) { return segserve::segctl::Main(argc, argv); }
