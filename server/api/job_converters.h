// File: server/api/job_converters.h — scheduler jobs to segserve.v1.Job / JobEvent.
#pragma once

#include "segserve/v1/training.pb.h"
#include "server/scheduler/job.h"

namespace segserve::api {

// `train_spec` (when the job's spec is a training spec) is filled by the caller.
void JobToProto(const scheduler::Job& job, v1::Job* out);
void JobEventToProto(const scheduler::JobEvent& event, v1::JobEvent* out);
v1::JobState StateToProto(scheduler::JobState state);
absl::StatusOr<scheduler::JobState> StateFromProto(v1::JobState state);

}  // namespace segserve::api
