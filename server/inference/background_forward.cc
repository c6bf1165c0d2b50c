#include "server/inference/background_forward.h"

#include "absl/synchronization/mutex.h"

namespace segserve::inference {
namespace {

// The answers of one batch's items.
struct Pending {
  absl::Mutex mu;
  int left ABSL_GUARDED_BY(mu) = 0;
  absl::Status error ABSL_GUARDED_BY(mu);
  std::vector<BatchResult> results ABSL_GUARDED_BY(mu);
};

// Submits one background work item per image and waits for every answer.
absl::StatusOr<std::vector<BatchResult>> Forward(BatchScheduler& scheduler,
                                                 BackgroundBatch batch, bool want_tap_means) {
  if (batch.n <= 0 || batch.model == nullptr ||
      batch.input.size() != static_cast<size_t>(batch.n) * batch.c * batch.h * batch.w) {
    return absl::InvalidArgumentError("background batch: input does not match its shape");
  }
  auto pending = std::make_shared<Pending>();
  {
    absl::MutexLock lock(&pending->mu);
    pending->left = batch.n;
    pending->results.resize(batch.n);
  }
  const size_t item_floats = static_cast<size_t>(batch.c) * batch.h * batch.w;
  int submitted = 0;
  for (int i = 0; i < batch.n; ++i) {
    WorkItem item;
    item.model = batch.model;
    item.height = batch.h;
    item.width = batch.w;
    item.priority = Priority::kBackground;
    item.want_tap_means = want_tap_means;
    item.deadline = batch.deadline;
    item.cancelled = batch.cancelled;
    if (batch.n == 1) {
      item.input = std::move(batch.input);
    } else {
      item.input.assign(batch.input.begin() + i * item_floats,
                        batch.input.begin() + (i + 1) * item_floats);
    }
    item.done = [pending, i, want_tap_means](absl::StatusOr<BatchResult> result) {
      absl::MutexLock lock(&pending->mu);
      if (!result.ok()) {
        if (pending->error.ok()) pending->error = result.status();
      } else if (want_tap_means && !result->tap_means.has_value()) {
        if (pending->error.ok()) pending->error = absl::InternalError("no tap means computed");
      } else {
        pending->results[i] = std::move(*result);
      }
      --pending->left;
    };
    absl::Status s = scheduler.Submit(std::move(item), /*continuation=*/!batch.admit || i > 0);
    if (!s.ok()) {
      absl::MutexLock lock(&pending->mu);
      pending->left -= batch.n - submitted;  // never answered
      if (pending->error.ok()) pending->error = s;
      break;
    }
    ++submitted;
  }
  absl::MutexLock lock(&pending->mu);
  auto all_back = [&pending]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pending->mu) {
    return pending->left == 0;
  };
  pending->mu.Await(absl::Condition(&all_back));
  if (!pending->error.ok()) return pending->error;
  return std::move(pending->results);
}

}  // namespace

absl::StatusOr<model_input::TapMeans> ForwardForTapMeans(BatchScheduler& scheduler,
                                                         BackgroundBatch batch) {
  const int n = batch.n;
  absl::StatusOr<std::vector<BatchResult>> results =
      Forward(scheduler, std::move(batch), /*want_tap_means=*/true);
  if (!results.ok()) return results.status();
  // Item by item -> one LayerMeans of n images per tap.
  model_input::TapMeans out = std::move(*(*results)[0].tap_means);
  for (auto& layer : out) layer.values.reserve(static_cast<size_t>(n) * layer.channels);
  for (int i = 1; i < n; ++i) {
    const model_input::TapMeans& one = *(*results)[i].tap_means;
    if (one.size() != out.size()) return absl::InternalError("analysis: tap count changed");
    for (size_t t = 0; t < out.size(); ++t) {
      out[t].values.insert(out[t].values.end(), one[t].values.begin(), one[t].values.end());
      ++out[t].images;
    }
  }
  return out;
}

absl::StatusOr<std::vector<LogitsView>> ForwardForLogits(BatchScheduler& scheduler,
                                                         BackgroundBatch batch) {
  absl::StatusOr<std::vector<BatchResult>> results =
      Forward(scheduler, std::move(batch), /*want_tap_means=*/false);
  if (!results.ok()) return results.status();
  std::vector<LogitsView> logits;
  logits.reserve(results->size());
  for (BatchResult& result : *results) logits.push_back(std::move(result.logits));
  return logits;
}

}  // namespace segserve::inference
