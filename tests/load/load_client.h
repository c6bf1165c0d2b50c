// File: tests/load/load_client.h — one simulated client of the load test: its own channel
// (its own TCP connection), a closed loop of Segment / SegmentStream / Models.List /
// Training.WatchJob calls drawn from a weighted mix, each call checked and recorded.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client/lib/client.h"
#include "segserve/v1/models.grpc.pb.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"
#include "tests/load/load_stats.h"

namespace segserve::load {

// Relative weights of the operations one client draws from.
struct Mix {
  int segment = 4;
  int stream = 2;
  int list = 2;
  int watch = 2;
};
// "segment=4,stream=2,list=2,watch=2" (missing names weigh 0; at least one > 0).
absl::StatusOr<Mix> ParseMix(const std::string& text);

// What the calls carry. Requests are built once and shared read-only.
struct Workload {
  std::vector<v1::SegmentRequest> images;    // cycled through by Segment and streams.
  int stream_images = 4;                     // images per SegmentStream call.
  std::chrono::milliseconds timeout{30000};  // deadline of every call, streams included.
  int watch_leave_every = 4;  // every Nth watch cancels after its first event (0 = never).
};

// Job ids for watchers: one finished job (one terminal event, then OK) and the most
// recently submitted one (queued, running or finished: one to a few events).
class JobFeed {
 public:
  void SetFinished(std::string id);
  void SetLatest(std::string id);
  // Alternates between the two (the finished one while nothing was submitted yet).
  std::string Pick(uint64_t n) const;

 private:
  mutable absl::Mutex mu_;
  std::string finished_ ABSL_GUARDED_BY(mu_);
  std::string latest_ ABSL_GUARDED_BY(mu_);
};

// The phases a client records into, in order.
enum Phase { kWarmup = 0, kMain = 1, kOverload = 2, kRecovery = 3 };
inline constexpr int kPhases = 4;
const char* PhaseName(int phase);

class LoadClient {
 public:
  static absl::StatusOr<std::unique_ptr<LoadClient>> Create(int index,
                                                            const client::ClientOptions& options,
                                                            const JobFeed& jobs);

  // Runs calls drawn from `mix` until `stop`, recording each into the recorder of the
  // phase current when it ended. Thread-compatible: one thread per client.
  void Run(const Mix& mix, const Workload& workload, const std::atomic<bool>& stop,
           const std::atomic<int>& phase);

  const Recorder& recorder(int phase) const { return recorders_[phase]; }
  // Answers that broke the API contract (a stream not answering every id, a watch ending
  // OK without a terminal event, a mask of the wrong size), with a sample message.
  int64_t violations() const { return violations_; }
  const std::string& first_violation() const { return first_violation_; }

 private:
  LoadClient(int index, std::unique_ptr<client::Client> client, const JobFeed& jobs);
  void Segment(const Workload& workload, Recorder& recorder);
  void Stream(const Workload& workload, Recorder& recorder);
  void List(const Workload& workload, Recorder& recorder);
  void Watch(const Workload& workload, Recorder& recorder);
  void Violation(const std::string& what);
  std::unique_ptr<grpc::ClientContext> Context(const Workload& workload) const;
  const v1::SegmentRequest& NextImage(const Workload& workload);

  const int index_;
  const std::unique_ptr<client::Client> client_;
  const JobFeed& jobs_;
  std::unique_ptr<v1::Segmentation::Stub> segmentation_;
  std::unique_ptr<v1::Models::Stub> models_;
  std::unique_ptr<v1::Training::Stub> training_;
  std::mt19937_64 rng_;
  uint64_t calls_ = 0;
  uint64_t watches_ = 0;
  Recorder recorders_[kPhases];
  int64_t violations_ = 0;
  std::string first_violation_;
};

}  // namespace segserve::load
