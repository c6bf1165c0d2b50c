// File: tests/load/load_stats.h — what the load generator records: calls per RPC kind,
// answers by gRPC status code, latencies; merged across client threads into a summary
// (p50/p99/max) printed for people and as one JSON object for scripts.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "grpcpp/support/status.h"
#include "nlohmann/json.hpp"

namespace segserve::load {

enum class Kind {
  kSegment,     // Segmentation.Segment (unary).
  kStream,      // one Segmentation.SegmentStream call, several images.
  kStreamItem,  // one image inside a stream (its own code from SegmentResponse.error).
  kList,        // Models.List.
  kWatch,       // Training.WatchJob, read to the end of the stream.
  kGenerate,    // Datasets.Generate: the jobs the watchers watch.
};
inline constexpr int kKinds = 6;
const char* KindName(Kind kind);

// One client thread's record; no locking (each thread owns one, merged at the end).
class Recorder {
 public:
  void Record(Kind kind, grpc::StatusCode code, double latency_ms);
  // A call the client cancelled on purpose (a watcher leaving early): not an error.
  void RecordClientCancel(Kind kind, double latency_ms);
  void Merge(const Recorder& other);

  struct PerKind {
    int64_t calls = 0;
    int64_t client_cancels = 0;
    std::map<int, int64_t> codes;  // grpc::StatusCode -> answers.
    std::vector<double> ok_ms;     // latencies of OK answers.
    std::vector<double> error_ms;  // latencies of non-OK answers (client cancels excluded).
  };
  const PerKind& of(Kind kind) const { return kinds_[static_cast<int>(kind)]; }

 private:
  std::array<PerKind, kKinds> kinds_;
};

struct Percentiles {
  double p50 = 0, p99 = 0, max = 0;
  int64_t n = 0;
};
// Nearest-rank percentiles of `values` (copied and sorted).
Percentiles Summarise(std::vector<double> values);

// Answers with a code outside `allowed` (OK is always allowed), across all kinds.
int64_t UnexpectedErrors(const Recorder& recorder, const std::vector<grpc::StatusCode>& allowed);

// {"segment": {"calls": N, "codes": {"OK": N, ...}, "ok_ms": {"p50":..}, ...}, ...}
nlohmann::json ToJson(const Recorder& recorder, double seconds);
// A table, one line per kind: calls, calls/s, codes, p50/p99/max of OK answers (and of
// errors when there were any).
std::string ToText(const Recorder& recorder, double seconds);

const char* CodeName(int code);

}  // namespace segserve::load
