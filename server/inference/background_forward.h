// File: server/inference/background_forward.h — forward passes that are not requests but
// share the device with them: analyses (tap channel means) and training evaluation (logits).
// A batch of normalised images becomes background-priority work items and the caller blocks
// until all are back. Wired in server/app for the Analyze RPC, ANALYSIS jobs and TRAIN jobs'
// evaluation, so that every forward pass goes through the one executor per device and
// interactive Segment traffic goes first.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "server/inference/batch_scheduler.h"
#include "server/model_input/tap_means.h"

namespace segserve::inference {

struct BackgroundBatch {
  std::shared_ptr<const registry::LoadedModel> model;
  int n = 0, c = 0, h = 0, w = 0;
  std::vector<float> input;  // n x c x h x w, the model's normalised input
  // Counted against SchedulerOptions::max_background_queue (the Analyze RPC: a full queue
  // answers RESOURCE_EXHAUSTED). False for jobs, whose concurrency the job scheduler bounds.
  bool admit = true;
  Clock::time_point deadline = Clock::time_point::max();
  std::shared_ptr<const CancelFlag> cancelled;
};

// The images' tap channel means, one LayerMeans per tap with n images, in order. Blocks:
// call from an analysis thread, never from a gRPC or executor thread.
absl::StatusOr<model_input::TapMeans> ForwardForTapMeans(BatchScheduler& scheduler,
                                                         BackgroundBatch batch);

// The images' logits (classes x h x w each, shared with their batch's output, not copied),
// in order. Blocks, as ForwardForTapMeans.
absl::StatusOr<std::vector<LogitsView>> ForwardForLogits(BatchScheduler& scheduler,
                                                         BackgroundBatch batch);

}  // namespace segserve::inference
