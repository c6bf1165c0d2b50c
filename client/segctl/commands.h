// File: client/segctl/commands.h — the subcommands of segctl. Each takes the arguments
// after its name and returns the process exit code: 0 ok, 1 server or runtime error,
// 2 usage error.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "client/lib/client.h"

namespace segserve::segctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// Options given before the subcommand, shared by all of them.
struct GlobalOptions {
  client::ClientOptions client;
};

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const GlobalOptions& global, const std::vector<std::string>& args,
             std::ostream& out, std::ostream& err);
};

// All subcommands, in the order --help lists them.
const std::vector<Command>& Commands();

int RunHealth(const GlobalOptions& global, const std::vector<std::string>& args,
              std::ostream& out, std::ostream& err);
int RunModels(const GlobalOptions& global, const std::vector<std::string>& args,
              std::ostream& out, std::ostream& err);
int RunSegment(const GlobalOptions& global, const std::vector<std::string>& args,
               std::ostream& out, std::ostream& err);
int RunBench(const GlobalOptions& global, const std::vector<std::string>& args,
             std::ostream& out, std::ostream& err);
int RunSubmitTrain(const GlobalOptions& global, const std::vector<std::string>& args,
                   std::ostream& out, std::ostream& err);
int RunJobs(const GlobalOptions& global, const std::vector<std::string>& args, std::ostream& out,
            std::ostream& err);
int RunDatasets(const GlobalOptions& global, const std::vector<std::string>& args,
                std::ostream& out, std::ostream& err);
int RunSusceptibility(const GlobalOptions& global, const std::vector<std::string>& args,
                      std::ostream& out, std::ostream& err);
int RunSynth(const GlobalOptions& global, const std::vector<std::string>& args,
             std::ostream& out, std::ostream& err);

int RunAuth(const GlobalOptions& global, const std::vector<std::string>& args, std::ostream& out,
            std::ostream& err);

// Prints `status` as "segctl: <CODE>: <message>" and returns kExitError.
int ReportError(std::ostream& err, const absl::Status& status);

}  // namespace segserve::segctl
