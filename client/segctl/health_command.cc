// `segctl health`: grpc.health.v1 Check, optionally polled until SERVING.
#include <chrono>
#include <iostream>
#include <thread>

#include "client/segctl/commands.h"

namespace segserve::segctl {

void AddHealthCommand(CLI::App& segctl, Invocation& invocation) {
  struct Options {
    std::string service;
    double wait_seconds = 0;
  };
  auto o = std::make_shared<Options>();
  CLI::App* health = segctl.add_subcommand("health", "check that the server is SERVING");
  health->add_option("--service", o->service, "service name (default: the whole server)");
  health->add_option("--wait", o->wait_seconds, "poll until SERVING or this many seconds passed")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  SetExamples(health, {"segctl health", "segctl --server 127.0.0.1:50051 health --wait 60"},
              "Prints SERVING, NOT_SERVING, ...; exits 0 only when SERVING.");
  SetAction(health, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) -> int {
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              const auto give_up =
                  std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(o->wait_seconds * 1000));
              while (true) {
                auto status = (*client)->Health(o->service);
                const bool serving = status.ok() && *status == client::ServingStatus::kServing;
                if (serving || std::chrono::steady_clock::now() >= give_up) {
                  if (!status.ok()) return ReportError(err, status.status());
                  out << client::ServingStatusName(*status) << "\n";
                  return serving ? kExitOk : kExitError;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
              }
            });
}

}  // namespace segserve::segctl
