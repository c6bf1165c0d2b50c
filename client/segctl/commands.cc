#include "client/segctl/commands.h"

#include "client/segctl/synth_command.h"

namespace segserve::segctl {

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {"health", "check that the server is SERVING", RunHealth},
      {"models", "list, inspect, load, unload, alias and import models", RunModels},
      {"segment", "segment image files; write masks and overlays", RunSegment},
      {"bench", "load-test Segment: images/s and latency percentiles", RunBench},
      {"submit-train", "submit a training job or a sweep over prune levels", RunSubmitTrain},
      {"jobs", "list, inspect, cancel and watch jobs", RunJobs},
      {"datasets", "list server-side data sets; generate synthetic ones", RunDatasets},
      {"susceptibility", "per-layer domain-shift susceptibility of models (table, plot)",
       RunSusceptibility},
      {"synth", "write a synthetic plasmodium data set locally", RunSynth},
      {"auth", "make bearer tokens and lines of the server's tokens file", RunAuth},
  };
  return commands;
}

int RunSynth(const GlobalOptions&, const std::vector<std::string>& args, std::ostream& out,
             std::ostream& err) {
  return RunSynthCommand(args, out, err);
}

}  // namespace segserve::segctl
