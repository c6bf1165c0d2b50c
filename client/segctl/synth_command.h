// File: client/segctl/synth_command.h — `segctl synth`: writes a synthetic
// plasmodium data set locally (no server needed).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace segserve::segctl {

// `args` are the arguments after "synth". Returns the exit code: 0 written, 1
// failure, 2 usage error (the message goes to `err`).
int RunSynthCommand(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);

}  // namespace segserve::segctl
