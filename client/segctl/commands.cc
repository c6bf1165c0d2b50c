#include "client/segctl/commands.h"

namespace segserve::segctl {

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {"health", "check that the server is SERVING", RunHealth},
  };
  return commands;
}

}  // namespace segserve::segctl
