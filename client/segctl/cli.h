// File: client/segctl/cli.h — segctl's command tree on CLI11. Every command and subcommand
// declares its options once; CLI11 parses them (types, ranges, environment defaults) and
// generates `--help` from the same declarations. A selected command records an action;
// RunSegctl runs it after the whole line parsed and the global options are resolved.
//
// Adding a command: write `void AddFooCommand(CLI::App& segctl, Invocation& invocation)`
// in foo_command.cc (declare it in commands.h, call it from BuildSegctl), declare options
// into a struct held by a shared_ptr, and finish with SetAction(...) on each leaf.
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "client/lib/client.h"
#include "segserve/v1/common.pb.h"
#include "segserve/v1/training.pb.h"

namespace segserve::segctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// Options given before the command, shared by all of them.
struct GlobalOptions {
  client::ClientOptions client;
};

// What a command does once parsed: writes to out/err, returns the exit code.
using Action =
    std::function<int(const GlobalOptions& global, std::ostream& out, std::ostream& err)>;

// The result of parsing one command line.
struct Invocation {
  Action action;  // set by the selected leaf command
  std::string command_path;  // "models import"
};

// Makes `action` what runs when `command` is the selected command.
void SetAction(CLI::App* command, Invocation& invocation, Action action);

// Adds "Example(s):" lines (and any notes) after a command's options in its --help.
void SetExamples(CLI::App* command, const std::vector<std::string>& examples,
                 const std::string& notes = "");

// The whole tree; global options live on the returned (root) app.
struct Segctl {
  std::unique_ptr<CLI::App> app;
  Invocation invocation;
  // Turns the parsed global flags into client options (reads --token-file); a usage
  // error when that fails.
  std::function<absl::StatusOr<GlobalOptions>()> resolve_globals;
};
std::unique_ptr<Segctl> BuildSegctl();

// Runs one command line (`args` without the program name): 0 ok, 1 error, 2 usage.
int RunSegctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Parses only (nothing runs, no server is contacted): 0 when the line parses or asks for
// --help, 2 for a usage error (the message goes to `err`).
int ParseSegctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Prints `status` as "segctl: <CODE>: <message>" and returns kExitError.
int ReportError(std::ostream& err, const absl::Status& status);

// CLI11 validators shared by commands.
// KIND:LEVEL with KIND brightness, contrast or saturation and LEVEL 0..5.
const CLI::Validator& ShiftValidator();
// The proto of a KIND:LEVEL text that passed ShiftValidator.
v1::Shift ShiftToProto(const std::string& text);
// HOST:PORT.
const CLI::Validator& HostPortValidator();
// --precision fp32|bf16|fp16 and --bf16-check (training jobs), and the proto of a precision.
void AddPrecisionOptions(CLI::App* command, std::string& precision, bool& bf16_check);
v1::Precision PrecisionToProto(const std::string& text);

}  // namespace segserve::segctl
