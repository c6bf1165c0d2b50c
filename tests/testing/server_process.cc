#include "tests/testing/server_process.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/lib/http_get.h"
#include "test_paths.h"

namespace segserve::testing {

TempDir::TempDir() {
  char tmpl[] = "/tmp/segserve_test_XXXXXX";
  path_ = mkdtemp(tmpl);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string SegserveBinary() { return std::string(SEGSERVE_BINARY_DIR) + "/server/app/segserve"; }
double ServerProcess::Metric(const std::string& series) const {
  auto body = client::HttpGet(metrics_port_, "/metrics");
  return body.ok() ? client::SampleValue(*body, series) : -2;
}

std::string SegctlBinary() { return std::string(SEGSERVE_BINARY_DIR) + "/client/segctl/segctl"; }

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& binary, const std::string& data_dir,
    const std::vector<std::string>& extra_flags, std::chrono::seconds startup_timeout) {
  // Replicas sharing one data dir pass their own --port_file.
  std::string port_file = data_dir + "/ports.json";
  for (const std::string& flag : extra_flags) {
    if (flag.rfind("--port_file=", 0) == 0) port_file = flag.substr(12);
  }
  std::filesystem::remove(port_file);
  std::vector<std::string> args = {binary,
                                   "--listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0",
                                   "--data_dir=" + data_dir,
                                   "--port_file=" + port_file,
                                   "--threads=1",
                                   "--bootstrap=false"};
  // Tests that are not about auth run without it; auth tests pass --auth_tokens_file.
  const bool auth_flag_given = std::any_of(extra_flags.begin(), extra_flags.end(), [](auto& f) {
    return f.rfind("--auth_", 0) == 0;
  });
  if (!auth_flag_given) args.push_back("--auth_disabled");
  args.insert(args.end(), extra_flags.begin(), extra_flags.end());
  std::unique_ptr<ServerProcess> process(new ServerProcess());
  process->pid_ = fork();
  if (process->pid_ < 0) return absl::InternalError("fork failed");
  if (process->pid_ == 0) {
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  const auto give_up = std::chrono::steady_clock::now() + startup_timeout;
  const std::regex ports(R"re("grpc_port":(\d+),"metrics_port":(\d+))re");
  while (std::chrono::steady_clock::now() < give_up) {
    std::ifstream in(port_file);
    std::stringstream text;
    text << in.rdbuf();
    std::smatch match;
    const std::string contents = text.str();
    if (std::regex_search(contents, match, ports)) {
      process->grpc_port_ = std::stoi(match[1]);
      process->metrics_port_ = std::stoi(match[2]);
      return process;
    }
    int status = 0;
    if (waitpid(process->pid_, &status, WNOHANG) == process->pid_) {
      process->pid_ = -1;
      return absl::InternalError(absl::StrCat("segserve exited during start-up, status ",
                                              status));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError("segserve did not write its port file in time");
}

absl::StatusOr<int> ServerProcess::Stop(int signal, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  kill(pid_, signal);
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return absl::InternalError(absl::StrCat("killed by signal ", WTERMSIG(status)));
    }
    if (std::chrono::steady_clock::now() >= give_up) {
      return absl::DeadlineExceededError("still running");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

}  // namespace segserve::testing
