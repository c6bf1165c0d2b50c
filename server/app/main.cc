// segserve: serves U-net segmentation, susceptibility analysis and training over gRPC.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <iostream>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "server/app/options.h"
#include "server/app/server.h"
#include "server/common/log.h"

namespace {

constexpr char kUsage[] =
    "segserve — gRPC service for biomedical U-net segmentation.\n\n"
    "  segserve [--listen=0.0.0.0:50051] [--metrics_listen=0.0.0.0:9090] "
    "[--data_dir=./var] [--device=cpu]\n\n"
    "Serves segserve.v1 (Segmentation, Susceptibility, Models, Training, Datasets),\n"
    "grpc.health.v1.Health and server reflection; Prometheus metrics at /metrics.\n"
    "SIGTERM/SIGINT: health goes NOT_SERVING, in-flight calls drain, exit 0.\n"
    "SIGHUP: re-read --auth_tokens_file (a bad file keeps the tokens in force).";

int g_signal_pipe[2] = {-1, -1};

// Async-signal-safe: one byte per signal into the pipe.
extern "C" void OnSignal(int sig) {
  const int saved_errno = errno;
  const unsigned char byte = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &byte, 1);
  errno = saved_errno;
}

// The next signal caught by OnSignal (blocks); SIGTERM if the pipe fails.
int NextSignal() {
  unsigned char byte = 0;
  while (true) {
    const ssize_t n = read(g_signal_pipe[0], &byte, 1);
    if (n == 1) return byte;
    if (n < 0 && errno == EINTR) continue;
    return SIGTERM;
  }
}

bool IsOurFlagFile(absl::string_view path) {
  return absl::StrContains(path, "server/app/") || absl::StrContains(path, "server/");
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = IsOurFlagFile;
  usage_config.contains_helpshort_flags = IsOurFlagFile;
  absl::SetFlagsUsageConfig(usage_config);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::cerr << "segserve: unexpected argument '" << positional[1] << "' (see --help)\n";
    return 2;
  }
  auto options = segserve::app::OptionsFromFlags();
  if (!options.ok()) {
    std::cerr << "segserve: " << options.status().message() << "\n";
    return 2;
  }
  segserve::common::SetLogLevel(options->log_level);

  // Signals go through a self-pipe read by this thread. Threads created from here on
  // inherit a mask that blocks them, so SIGTERM never interrupts gRPC or torch; threads
  // that libraries start before main (two, measured) do not block them, and a signal the
  // kernel hands to one of those must still be caught, never kill the process.
  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) {
    std::cerr << "segserve: cannot create the signal pipe\n";
    return 1;
  }
  sigset_t signals;
  sigemptyset(&signals);
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    sigaddset(&signals, sig);
    sigaction(sig, &action, nullptr);
  }
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = segserve::app::SegserveServer::Create(*options);
  if (!server.ok()) {
    LOG(ERROR) << "cannot start: " << server.status().ToString();
    return 1;
  }
  pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
  int received = 0;
  while ((received = NextSignal()) == SIGHUP) {
    absl::Status reloaded = (*server)->ReloadAuth();
    if (reloaded.ok()) {
      LOG(INFO) << "SIGHUP: auth tokens reloaded";
    } else {
      LOG(ERROR) << "SIGHUP: auth tokens not reloaded, the previous ones stay in force: "
                 << reloaded.message();
    }
  }
  LOG(INFO) << "received " << (received == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  server->reset();
  return 0;
}
