#include <chrono>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/segctl/args.h"
#include "client/segctl/commands.h"

namespace segserve::segctl {

namespace {
constexpr char kHealthUsage[] =
    "usage: segctl health [--service NAME] [--wait SECONDS]\n"
    "  Checks grpc.health.v1 on the server. Prints SERVING, NOT_SERVING, ...; exit 0 only\n"
    "  when SERVING. --wait polls until SERVING or the time is up.\n";
}  // namespace

int RunHealth(const GlobalOptions& global, const std::vector<std::string>& argv,
              std::ostream& out, std::ostream& err) {
  auto args = Args::Parse(argv, {"service", "wait"}, {"help"});
  if (!args.ok()) {
    err << "segctl health: " << args.status().message() << "\n" << kHealthUsage;
    return kExitUsage;
  }
  if (args->Has("help")) {
    out << kHealthUsage;
    return kExitOk;
  }
  auto wait_seconds = args->GetDouble("wait", 0);
  if (!wait_seconds.ok() || *wait_seconds < 0 || !args->positional().empty()) {
    err << "segctl health: "
        << (wait_seconds.ok() ? "unexpected argument" : wait_seconds.status().message())
        << "\n" << kHealthUsage;
    return kExitUsage;
  }
  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  const auto give_up = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(*wait_seconds * 1000));
  while (true) {
    auto status = (*client)->Health(args->Get("service"));
    const bool serving = status.ok() && *status == client::ServingStatus::kServing;
    if (serving || std::chrono::steady_clock::now() >= give_up) {
      if (!status.ok()) return ReportError(err, status.status());
      out << client::ServingStatusName(*status) << "\n";
      return serving ? kExitOk : kExitError;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace segserve::segctl
