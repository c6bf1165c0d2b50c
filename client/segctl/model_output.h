// File: client/segctl/model_output.h — how segctl shows models: the `models list` table
// (name, version, state, config, test IoU, aliases) and `models get`'s full details.
#pragma once

#include <iosfwd>

#include "segserve/v1/models.pb.h"

namespace segserve::segctl {

void PrintModelTable(std::ostream& out, const v1::ListModelsResponse& response);
// Every field of one model version; metrics sorted by name.
void PrintModelDetails(std::ostream& out, const v1::ModelInfo& model);

}  // namespace segserve::segctl
