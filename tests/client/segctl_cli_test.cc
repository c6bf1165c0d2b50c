// segctl's command line, in-process: the whole command tree answers --help and refuses bad
// options, the command lines of README.md and docs/*.md parse, and the old spellings
// (underscores, --name=value, "help") keep working.
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/segctl/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_paths.h"

namespace segserve::segctl {
namespace {

using ::testing::HasSubstr;

struct Result {
  int code;
  std::string out, err;
};

Result RunCli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = RunSegctl(args, out, err);
  return {code, out.str(), err.str()};
}

Result ParseCli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = ParseSegctl(args, out, err);
  return {code, out.str(), err.str()};
}

// Every command path: {} (segctl itself), {"health"}, {"models"}, {"models", "list"}, ...
void CollectPaths(const CLI::App& app, std::vector<std::string> prefix,
                  std::vector<std::vector<std::string>>& paths) {
  paths.push_back(prefix);
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    std::vector<std::string> path = prefix;
    path.push_back(sub->get_name());
    CollectPaths(*sub, path, paths);
  }
}

std::vector<std::vector<std::string>> AllCommandPaths() {
  std::unique_ptr<Segctl> segctl = BuildSegctl();
  std::vector<std::vector<std::string>> paths;
  CollectPaths(*segctl->app, {}, paths);
  return paths;
}

TEST(SegctlCli, EveryCommandAnswersHelpWithExitZeroAndExamples) {
  const auto paths = AllCommandPaths();
  EXPECT_GE(paths.size(), 20u);  // the root, 10 commands and their subcommands
  for (const auto& path : paths) {
    const std::string name = "segctl " + absl::StrJoin(path, " ");
    std::vector<std::string> args = path;
    args.push_back("--help");
    Result r = RunCli(args);
    EXPECT_EQ(r.code, 0) << name << " --help: " << r.err;
    EXPECT_THAT(r.out, HasSubstr("Usage:")) << name;
    EXPECT_THAT(r.out, HasSubstr("Example")) << name << " --help lists no example";
    EXPECT_EQ(r.err, "") << name;
    // -h is the same.
    args.back() = "-h";
    EXPECT_EQ(RunCli(args).code, 0) << name << " -h";
  }
}

TEST(SegctlCli, EveryCommandRefusesAnUnknownOptionWithExitTwo) {
  for (const auto& path : AllCommandPaths()) {
    const std::string name = "segctl " + absl::StrJoin(path, " ");
    std::vector<std::string> args = path;
    args.push_back("--no-such-option");
    Result r = RunCli(args);
    EXPECT_EQ(r.code, 2) << name << ": " << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("--no-such-option")) << name;
  }
}

TEST(SegctlCli, MissingOrUnknownCommandsAreUsageErrors) {
  EXPECT_EQ(RunCli({}).code, 2);
  EXPECT_EQ(RunCli({"no-such-command"}).code, 2);
  EXPECT_EQ(RunCli({"jobs"}).code, 2);
  EXPECT_EQ(RunCli({"models", "frobnicate"}).code, 2);
  EXPECT_EQ(RunCli({"health", "extra-argument"}).code, 2);
  Result help = RunCli({"help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_THAT(help.out, HasSubstr("submit-train"));
  EXPECT_THAT(help.out, HasSubstr("SEGSERVE_ADDR"));
  Result jobs_help = RunCli({"jobs", "help"});
  EXPECT_EQ(jobs_help.code, 0);
  EXPECT_THAT(jobs_help.out, HasSubstr("watch"));
  // Global options go before the command.
  EXPECT_EQ(RunCli({"--server", "h:1", "--help"}).code, 0);
}

TEST(SegctlCli, OldSpellingsStillParse) {
  // `--name value`, `--name=value`, underscores for dashes, flags with =true/false.
  EXPECT_EQ(ParseCli({"--server=127.0.0.1:1", "--timeout", "5", "submit-train", "--dataset", "d",
                      "--prune_level", "1", "--max_steps_per_epoch=3", "--batch-size=4", "--wait"})
                .code,
            0);
  EXPECT_EQ(ParseCli({"--tls_ca", "ca.pem", "health", "--wait=2"}).code, 0);
  EXPECT_EQ(ParseCli({"datasets", "generate", "--name", "x", "--wait=false"}).code, 0);
  EXPECT_EQ(ParseCli({"submit-train", "--dataset", "d", "--encoders", "resnet18,resnet34",
                      "--prune-levels", "0,1,2", "--cross-domain", "brightness:4,contrast:3",
                      "--cross-domain", "other-set"})
                .code,
            0);
  EXPECT_EQ(ParseCli({"submit-train", "--dataset", "d", "--susceptibility",
                      "brightness:5,contrast:3", "--susceptibility-images", "16"})
                .code,
            0);
  EXPECT_EQ(ParseCli({"segment", "a.png", "--model", "m:2", "b.png", "--overlay"}).code, 0);
  EXPECT_EQ(ParseCli({"models", "alias", "baseline", "mymodel"}).code, 0);
  EXPECT_EQ(ParseCli({"jobs", "list", "--state", "running"}).code, 0);
}

TEST(SegctlCli, TypedOptionsAreRangeChecked) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {{"--timeout", "0", "health"}, "--timeout"},
           {{"--timeout", "soon", "health"}, "--timeout"},
           {{"synth", "--out", "x", "--n", "0"}, "--n"},
           {{"synth", "--out", "x", "--n", "ten"}, "--n"},
           {{"synth", "--out", "x", "--shift", "brightness:9"}, "0..5"},
           {{"bench", "--model", "m", "--concurrency", "0"}, "--concurrency"},
           {{"bench", "--model", "m", "--metrics", "nohost"}, "HOST:PORT"},
           {{"bench", "--model", "m", "--api", "rest"}, "--api"},
           {{"models", "export", "m"}, "--out"},
           {{"models", "export", "m", "--out", "x.pt", "--format", "onnx"}, "--format"},
           {{"submit-train", "--dataset", "d", "--prune-levels", "0,7"}, "--prune-level"},
           {{"submit-train", "--dataset", "d", "--encoder", "resnet50"}, "--encoder"},
           {{"submit-train", "--dataset", "d", "--cross-domain", "glare:2"}, "glare"},
           {{"submit-train", "--dataset", "d", "--precision", "int8"}, "--precision"},
           {{"submit-train", "--dataset", "d", "--susceptibility", "blur:2"}, "blur"},
           {{"submit-train", "--dataset", "d", "--susceptibility-images", "8"}, "--susceptibility"},
           {{"submit-train", "--dataset", "d", "--susceptibility", "contrast:2",
             "--susceptibility-images", "1"},
            "--susceptibility-images"},
           {{"experiment", "run", "--dataset", "d", "--precision", "fp8"}, "--precision"},
           {{"models", "get", "m:zero"}, "version"},
           {{"models", "import", "--name", "m"}, "--file"},
           {{"jobs", "list", "--limit", "5000"}, "--limit"},
           {{"jobs", "get"}, "job_id"},
           {{"jobs", "purge"}, "--older-than"},
           {{"jobs", "purge", "--older-than", "soon"}, "--older-than"},
           {{"models", "delete"}, "model"},
           {{"models", "delete", "m:zero"}, "version"},
           {{"datasets", "delete"}, "name"},
           {{"auth", "new-token", "--name", "bad name", "--role", "viewer"}, "--name"},
           {{"auth", "new-token", "--name", "ok", "--role", "root"}, "--role"},
           {{"--token-file", "/no/such/file", "health"}, "--token-file"},
       }) {
    Result r = RunCli(c.args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(c.args, " ") << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.says)) << absl::StrJoin(c.args, " ");
  }
}

TEST(SegctlCli, EnvironmentGivesServerAndTokenDefaults) {
  ::setenv("SEGSERVE_ADDR", "env-host:1234", 1);
  ::setenv("SEGSERVE_TOKEN", "env-token", 1);
  {
    std::unique_ptr<Segctl> segctl = BuildSegctl();
    segctl->app->parse(std::vector<std::string>{"health"});
    auto global = segctl->resolve_globals();
    ASSERT_TRUE(global.ok()) << global.status();
    EXPECT_EQ(global->client.target, "env-host:1234");
    EXPECT_EQ(global->client.token, "env-token");
  }
  {
    std::unique_ptr<Segctl> segctl = BuildSegctl();
    // Reversed, as CLI11 takes them: health --server flag-host:1.
    segctl->app->parse(std::vector<std::string>{"health", "flag-host:1", "--server"});
    auto global = segctl->resolve_globals();
    ASSERT_TRUE(global.ok());
    EXPECT_EQ(global->client.target, "flag-host:1");
  }
  ::unsetenv("SEGSERVE_ADDR");
  ::unsetenv("SEGSERVE_TOKEN");
  std::unique_ptr<Segctl> segctl = BuildSegctl();
  segctl->app->parse(std::vector<std::string>{"health", "2.5", "--timeout"});
  auto global = segctl->resolve_globals();
  ASSERT_TRUE(global.ok());
  EXPECT_EQ(global->client.target, "localhost:50051");
  EXPECT_EQ(global->client.token, "");
  EXPECT_EQ(global->client.timeout, std::chrono::milliseconds(2500));
}

// `segctl ...` command lines in README.md and docs/*.md: fenced shell blocks and inline
// code spans (which may wrap across lines). Placeholders (<job-id>) become words, optional
// parts ([--x y]) are kept, trailing comments, `&& ...` and redirections are cut.
// Schematic lines containing "..." and mentions of a bare option are skipped.
std::vector<std::string> DocumentedCommandLines(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<std::string> candidates;
  bool in_fence = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view stripped = absl::StripLeadingAsciiWhitespace(line);
    if (absl::StartsWith(stripped, "```")) {
      in_fence = !in_fence;
      continue;
    }
    if (in_fence) candidates.emplace_back(stripped);
  }
  // Inline spans: text between single backticks outside fences.
  std::string outside;
  in_fence = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "```")) {
      in_fence = !in_fence;
      continue;
    }
    if (!in_fence) absl::StrAppend(&outside, line, "\n");
  }
  static const std::regex span("`([^`]+)`");
  for (auto it = std::sregex_iterator(outside.begin(), outside.end(), span);
       it != std::sregex_iterator(); ++it) {
    std::string code = (*it)[1];
    std::replace(code.begin(), code.end(), '\n', ' ');
    candidates.push_back(code);
  }
  std::vector<std::string> commands;
  static const std::regex start(R"(^(?:[A-Z_]+=\S+\s+)*(?:\S*/)?segctl(\s.*)?$)");
  for (std::string candidate : candidates) {
    std::smatch match;
    if (!std::regex_match(candidate, match, start)) continue;
    std::string rest = match[1];
    rest = std::regex_replace(rest, std::regex(R"(<[^ >][^>]*>)"), "placeholder");
    for (const char* cut : {" #", " &&", " |", " < ", " > "}) {
      if (auto at = rest.find(cut); at != std::string::npos) rest.resize(at);
    }
    if (rest.find("...") != std::string::npos) continue;
    // "`segctl synth --shift`" mentions an option; it is not a command line.
    if (std::regex_search(rest, std::regex(R"(\s--[a-z-]+\s*$)"))) continue;
    rest = std::regex_replace(rest, std::regex(R"([\[\]])"), " ");
    commands.push_back(rest);
  }
  return commands;
}

TEST(SegctlCli, DocumentedCommandLinesParse) {
  std::vector<std::string> files = {"README.md", "docs/datasets.md", "docs/deploy.md",
                                    "docs/experiments.md"};
  int checked = 0;
  for (const std::string& file : files) {
    for (const std::string& line :
         DocumentedCommandLines(std::string(SEGSERVE_SOURCE_DIR) + "/" + file)) {
      std::vector<std::string> args = absl::StrSplit(line, ' ', absl::SkipWhitespace());
      if (args.empty()) continue;  // "`segctl`" alone names the program
      Result r = ParseCli(args);
      EXPECT_EQ(r.code, 0) << file << ": segctl" << line << "\n" << r.err;
      ++checked;
    }
  }
  // README alone has over a dozen; fail loudly if the extraction stops finding them.
  EXPECT_GE(checked, 15);
}

// Command lines of scripts/container-test.sh, bench/serving/*.sh, docker/Dockerfile*,
// tests/deploy/prometheus_scrape_test.sh and tests/integration (shell variables replaced
// by values); keep in step when those change.
TEST(SegctlCli, ScriptCommandLinesParse) {
  const std::vector<std::vector<std::string>> lines = {
      {"--server", "127.0.0.1:1", "health", "--wait", "60"},
      {"--timeout", "4", "health"},
      {"--server", "127.0.0.1:2", "--timeout", "2", "health"},
      {"--server", "127.0.0.1:1", "models", "import", "--file", "w.pt", "--name", "ct-l1",
       "--encoder", "resnet18", "--prune-level", "1", "--classes", "3", "--load"},
      {"synth", "--out", "smears", "--n", "1", "--size", "128"},
      {"--server", "127.0.0.1:1", "segment", "--model", "ct-l1", "--out", "masks", "images"},
      {"--server", "127.0.0.1:1", "--timeout", "120", "bench", "--model", "bench-l1",
       "--concurrency", "16", "--duration", "10", "--warmup", "3", "--size", "256", "--metrics",
       "127.0.0.1:9090"},
      {"--server", "127.0.0.1:1", "--timeout", "120", "bench", "--model", "bench-l1",
       "--concurrency", "16", "--duration", "10", "--warmup", "3", "--size", "256", "--rate",
       "12.50"},
      {"--server", "127.0.0.1:1", "--timeout", "120", "bench", "--api", "oip", "--model",
       "served", "--concurrency", "8", "--duration", "15", "--warmup", "3", "--size", "256"},
      {"--server", "127.0.0.1:1", "--timeout", "600", "models", "export", "r34:1", "--out",
       "out1.pt"},
      {"--server", "127.0.0.1:1", "models", "export", "r34", "--out", "e.pt", "--format",
       "torchvision-encoder"},
      {"auth", "new-token", "--name", "scrape-test", "--role", "viewer", "--append", "tokens"},
      {"--server", "127.0.0.1:1", "models", "list"},
      {"--server", "127.0.0.1:1", "models", "unload", "x"},
  };
  for (const auto& args : lines) {
    Result r = ParseCli(args);
    EXPECT_EQ(r.code, 0) << absl::StrJoin(args, " ") << ": " << r.err;
  }
}

}  // namespace
}  // namespace segserve::segctl
