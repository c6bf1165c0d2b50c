// File: server/auth/role.h — the four roles of segserve's bearer tokens. Each role can do
// everything the roles below it can: viewer < segmenter < trainer < admin.
#pragma once

#include <optional>
#include <string_view>

namespace segserve::auth {

enum class Role {
  kViewer = 1,     // health, list, get, watch
  kSegmenter = 2,  // + Segment, SegmentStream, Analyze, SubmitAnalysis
  kTrainer = 3,    // + SubmitTrain, CancelJob, Datasets.Generate
  kAdmin = 4,      // + Models.Load, Unload, Import, SetAlias, Delete; Datasets.Delete;
                   //   Training.PurgeJobs
};

// "viewer", "segmenter", "trainer", "admin".
const char* RoleName(Role role);
std::optional<Role> ParseRole(std::string_view name);

// Whether a caller holding `held` may call a method that needs `needed`.
inline bool Permits(Role held, Role needed) {
  return static_cast<int>(held) >= static_cast<int>(needed);
}

}  // namespace segserve::auth
