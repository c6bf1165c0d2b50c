// File: client/segctl/commands.h — the command groups of segctl, one file each
// (health_command.cc, models_command.cc, ...). Each adds its commands, their options and
// --help examples to the root app; BuildSegctl (cli.cc) calls them in --help order.
#pragma once

#include "client/segctl/cli.h"

namespace segserve::segctl {

void AddHealthCommand(CLI::App& segctl, Invocation& invocation);
void AddModelsCommands(CLI::App& segctl, Invocation& invocation);
void AddSegmentCommand(CLI::App& segctl, Invocation& invocation);
void AddBenchCommand(CLI::App& segctl, Invocation& invocation);
void AddSubmitTrainCommand(CLI::App& segctl, Invocation& invocation);
void AddExperimentCommands(CLI::App& segctl, Invocation& invocation);
void AddJobsCommands(CLI::App& segctl, Invocation& invocation);
void AddDatasetsCommands(CLI::App& segctl, Invocation& invocation);
void AddSusceptibilityCommand(CLI::App& segctl, Invocation& invocation);
void AddSynthCommand(CLI::App& segctl, Invocation& invocation);
void AddAuthCommands(CLI::App& segctl, Invocation& invocation);

}  // namespace segserve::segctl
