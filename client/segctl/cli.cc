#include "client/segctl/cli.h"

#include <algorithm>
#include <fstream>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/segctl/commands.h"
#include "server/data/shift.h"

namespace segserve::segctl {
namespace {

struct GlobalFlags {
  std::string server = "localhost:50051";
  double timeout = 30;
  std::string token;
  std::string token_file;
  std::string tls_ca, tls_cert, tls_key;
};

// segctl has always accepted `--prune_level` for `--prune-level`: map underscores in
// option names (not in values, not after "--") to dashes before CLI11 sees them.
void NormalizeOptionNames(std::vector<std::string>& args) {
  for (std::string& arg : args) {
    if (arg == "--") return;
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) continue;
    const size_t end = std::min(arg.find('='), arg.size());
    for (size_t i = 2; i < end; ++i) {
      if (arg[i] == '_') arg[i] = '-';
    }
  }
}

// `segctl help`, `segctl jobs help`: "help" where a subcommand name is expected means
// --help, as it did before CLI11.
void MapHelpWord(const CLI::App& root, std::vector<std::string>& args) {
  const CLI::App* current = &root;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") return;
    if (arg.rfind("-", 0) == 0) {
      const CLI::Option* option = current->get_option_no_throw(arg.substr(0, arg.find('=')));
      if (option != nullptr && arg.find('=') == std::string::npos &&
          option->get_expected_min() > 0) {
        ++i;  // skip its value
      }
      continue;
    }
    const auto subcommands = current->get_subcommands([](const CLI::App*) { return true; });
    if (subcommands.empty()) return;
    if (arg == "help") {
      args[i] = "--help";
      return;
    }
    const CLI::App* next = nullptr;
    for (const CLI::App* sub : subcommands) {
      if (sub->check_name(arg)) next = sub;
    }
    if (next == nullptr) return;
    current = next;
  }
}

constexpr char kRootFooter[] =
    "Examples:\n"
    "  segctl health\n"
    "  segctl --server host:50051 --token-file ~/.segserve-token models list\n"
    "  segctl submit-train --dataset plasmodium-synth --prune-levels 0,1 --epochs 20 --wait\n"
    "  segctl segment --model l1-pruned --out masks --overlay smears/images\n\n"
    "Global options go before COMMAND; `--name value`, `--name=value` and --name_value\n"
    "spellings are accepted. 'segctl COMMAND --help' describes a command.\n"
    "Exit codes: 0 ok, 1 server or runtime error, 2 usage error.";

}  // namespace

void SetAction(CLI::App* command, Invocation& invocation, Action action) {
  Invocation* target = &invocation;
  std::string path = command->get_name();
  for (const CLI::App* parent = command->get_parent(); parent && parent->get_parent();
       parent = parent->get_parent()) {
    path = parent->get_name() + " " + path;
  }
  command->callback([target, path, action = std::move(action)] {
    target->action = action;
    target->command_path = path;
  });
}

void SetExamples(CLI::App* command, const std::vector<std::string>& examples,
                 const std::string& notes) {
  std::string footer;
  if (!notes.empty()) footer = notes + "\n\n";
  footer += examples.size() == 1 ? "Example:\n" : "Examples:\n";
  for (const std::string& example : examples) footer += "  " + example + "\n";
  footer.pop_back();
  command->footer(footer);
}

int ReportError(std::ostream& err, const absl::Status& status) {
  err << "segctl: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
  return kExitError;
}

const CLI::Validator& ShiftValidator() {
  static const CLI::Validator validator(
      [](std::string& value) -> std::string {
        auto shift = data::ParseShift(value, "shift");
        return shift.ok() ? std::string() : std::string(shift.status().message());
      },
      "KIND:LEVEL", "shift");
  return validator;
}

v1::Shift ShiftToProto(const std::string& text) {
  v1::Shift proto;
  auto shift = data::ParseShift(text, "shift");
  if (!shift.ok()) return proto;
  switch (shift->kind) {
    case data::ShiftKind::kBrightness:
      proto.set_kind(v1::Shift::KIND_BRIGHTNESS);
      break;
    case data::ShiftKind::kContrast:
      proto.set_kind(v1::Shift::KIND_CONTRAST);
      break;
    case data::ShiftKind::kSaturation:
      proto.set_kind(v1::Shift::KIND_SATURATION);
      break;
    default:
      return proto;
  }
  proto.set_level(shift->level);
  return proto;
}

void AddPrecisionOptions(CLI::App* command, std::string& precision, bool& bf16_check) {
  command
      ->add_option("--precision", precision,
                   "forward-pass arithmetic: fp32, bf16 (autocast, fp32 master weights) or fp16 "
                   "(CUDA only, loss scaling)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  command->add_flag("--bf16-check", bf16_check,
                    "also measure test IoU served in bf16 (metric test_iou_bf16); the server's "
                    "--precision=auto serves bf16 only for models whose check passed");
}

v1::Precision PrecisionToProto(const std::string& text) {
  if (text == "bf16") return v1::PRECISION_BF16;
  if (text == "fp16") return v1::PRECISION_FP16;
  return v1::PRECISION_FP32;
}

const CLI::Validator& HostPortValidator() {
  static const CLI::Validator validator(
      [](std::string& value) -> std::string {
        const auto colon = value.rfind(':');
        int port = 0;
        if (colon == std::string::npos || colon == 0 ||
            !absl::SimpleAtoi(value.substr(colon + 1), &port) || port < 1 || port > 65535) {
          return "expected HOST:PORT, got '" + value + "'";
        }
        return std::string();
      },
      "HOST:PORT", "host_port");
  return validator;
}

std::unique_ptr<Segctl> BuildSegctl() {
  auto segctl = std::make_unique<Segctl>();
  auto app = std::make_unique<CLI::App>(
      "segctl: the command-line client of segserve (U-net segmentation, training and "
      "domain-shift analysis over gRPC).",
      "segctl");
  app->require_subcommand(1);
  app->get_formatter()->column_width(34);
  app->footer(kRootFooter);
  auto flags = std::make_shared<GlobalFlags>();
  app->add_option("--server", flags->server, "segserve address HOST:PORT")
      ->envname("SEGSERVE_ADDR")
      ->capture_default_str();
  app->add_option("--timeout", flags->timeout, "deadline of each call, seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--token", flags->token, "bearer token")->envname("SEGSERVE_TOKEN");
  app->add_option("--token-file", flags->token_file,
                  "read the bearer token from FILE (keeps it out of ps)")
      ->check(CLI::ExistingFile);
  app->add_option("--tls-ca", flags->tls_ca, "trust this CA and use TLS");
  app->add_option("--tls-cert", flags->tls_cert, "client certificate (mutual TLS)");
  app->add_option("--tls-key", flags->tls_key, "client key (mutual TLS)");

  Invocation& invocation = segctl->invocation;
  AddHealthCommand(*app, invocation);
  AddModelsCommands(*app, invocation);
  AddSegmentCommand(*app, invocation);
  AddBenchCommand(*app, invocation);
  AddSubmitTrainCommand(*app, invocation);
  AddExperimentCommands(*app, invocation);
  AddJobsCommands(*app, invocation);
  AddDatasetsCommands(*app, invocation);
  AddSusceptibilityCommand(*app, invocation);
  AddSynthCommand(*app, invocation);
  AddAuthCommands(*app, invocation);

  segctl->resolve_globals = [flags]() -> absl::StatusOr<GlobalOptions> {
    GlobalOptions global;
    global.client.target = flags->server;
    global.client.token = flags->token;
    if (!flags->token_file.empty()) {
      std::ifstream in(flags->token_file);
      std::string token;
      if (!in || !std::getline(in, token)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--token-file: cannot read '", flags->token_file, "'"));
      }
      global.client.token = std::string(absl::StripAsciiWhitespace(token));
    }
    global.client.tls_ca = flags->tls_ca;
    global.client.tls_cert = flags->tls_cert;
    global.client.tls_key = flags->tls_key;
    global.client.timeout = std::chrono::milliseconds(static_cast<int64_t>(flags->timeout * 1000));
    return global;
  };
  segctl->app = std::move(app);
  return segctl;
}

namespace {

// Parses; on success `*segctl` holds the action. Returns -1 when the line parsed and a
// command should run, otherwise the exit code (help: 0, usage error: 2).
int Parse(Segctl& segctl, std::vector<std::string> args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << segctl.app->help();
    return kExitUsage;
  }
  NormalizeOptionNames(args);
  MapHelpWord(*segctl.app, args);
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments reversed.
  try {
    segctl.app->parse(std::move(args));
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help
      segctl.app->exit(e, out, err);
      return kExitOk;
    }
    std::string path = "segctl";
    for (const CLI::App* app = segctl.app.get(); !app->get_subcommands().empty();) {
      app = app->get_subcommands().front();
      path += " " + app->get_name();
    }
    // CLI11 checks required options before it complains about unknown ones; a typo
    // (--datset) is the more useful thing to report.
    const std::vector<std::string> unknown = segctl.app->remaining(/*recurse=*/true);
    if (!unknown.empty() && dynamic_cast<const CLI::ExtrasError*>(&e) == nullptr) {
      err << path << ": unexpected argument(s): " << absl::StrJoin(unknown, " ") << "\n";
    }
    err << path << ": " << e.what() << "\nRun '" << path << " --help' for usage.\n";
    return kExitUsage;
  }
  if (!segctl.invocation.action) {
    err << segctl.app->help();
    return kExitUsage;
  }
  return -1;
}

}  // namespace

int ParseSegctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::unique_ptr<Segctl> segctl = BuildSegctl();
  const int code = Parse(*segctl, args, out, err);
  return code < 0 ? kExitOk : code;
}

int RunSegctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::unique_ptr<Segctl> segctl = BuildSegctl();
  const int code = Parse(*segctl, args, out, err);
  if (code >= 0) return code;
  absl::StatusOr<GlobalOptions> global = segctl->resolve_globals();
  if (!global.ok()) {
    err << "segctl: " << global.status().message() << "\n";
    return kExitUsage;
  }
  return segctl->invocation.action(*global, out, err);
}

}  // namespace segserve::segctl
