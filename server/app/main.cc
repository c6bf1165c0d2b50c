// segserve: serves U-net segmentation, susceptibility analysis and training over gRPC.
#include <signal.h>

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

  // Signals are taken synchronously by this thread; every other thread (gRPC, torch)
  // inherits the blocked mask, so SIGTERM never interrupts them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = segserve::app::SegserveServer::Create(*options);
  if (!server.ok()) {
    LOG(ERROR) << "cannot start: " << server.status().ToString();
    return 1;
  }
  int received = 0;
  while (sigwait(&signals, &received) == 0 && received == SIGHUP) {
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
