#include "server/inference/tap_means_forward.h"

#include <optional>

#include "absl/synchronization/mutex.h"

namespace segserve::inference {
namespace {

// The answers of one request's items.
struct Pending {
  absl::Mutex mu;
  int left ABSL_GUARDED_BY(mu) = 0;
  absl::Status error ABSL_GUARDED_BY(mu);
  std::vector<std::optional<model_input::TapMeans>> means ABSL_GUARDED_BY(mu);
};

}  // namespace

absl::StatusOr<model_input::TapMeans> ForwardForTapMeans(BatchScheduler& scheduler,
                                                         TapMeansRequest request) {
  if (request.n <= 0 || request.model == nullptr ||
      request.input.size() != static_cast<size_t>(request.n) * request.c * request.h * request.w) {
    return absl::InvalidArgumentError("analysis batch: input does not match its shape");
  }
  auto pending = std::make_shared<Pending>();
  {
    absl::MutexLock lock(&pending->mu);
    pending->left = request.n;
    pending->means.resize(request.n);
  }
  const size_t item_floats = static_cast<size_t>(request.c) * request.h * request.w;
  int submitted = 0;
  for (int i = 0; i < request.n; ++i) {
    WorkItem item;
    item.model = request.model;
    item.height = request.h;
    item.width = request.w;
    item.priority = Priority::kBackground;
    item.want_tap_means = true;
    item.deadline = request.deadline;
    item.cancelled = request.cancelled;
    item.input.assign(request.input.begin() + i * item_floats,
                      request.input.begin() + (i + 1) * item_floats);
    item.done = [pending, i](absl::StatusOr<BatchResult> result) {
      absl::MutexLock lock(&pending->mu);
      if (!result.ok()) {
        if (pending->error.ok()) pending->error = result.status();
      } else if (!result->tap_means.has_value()) {
        if (pending->error.ok()) pending->error = absl::InternalError("no tap means computed");
      } else {
        pending->means[i] = std::move(*result->tap_means);
      }
      --pending->left;
    };
    absl::Status s = scheduler.Submit(std::move(item), /*continuation=*/!request.admit || i > 0);
    if (!s.ok()) {
      absl::MutexLock lock(&pending->mu);
      pending->left -= request.n - submitted;  // never answered
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
  // Item by item -> one LayerMeans of n images per tap.
  model_input::TapMeans out = std::move(*pending->means[0]);
  for (auto& layer : out) layer.values.reserve(static_cast<size_t>(request.n) * layer.channels);
  for (int i = 1; i < request.n; ++i) {
    const model_input::TapMeans& one = *pending->means[i];
    if (one.size() != out.size()) return absl::InternalError("analysis: tap count changed");
    for (size_t t = 0; t < out.size(); ++t) {
      out[t].values.insert(out[t].values.end(), one[t].values.begin(), one[t].values.end());
      ++out[t].images;
    }
  }
  return out;
}

}  // namespace segserve::inference
