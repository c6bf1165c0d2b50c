#include "server/metrics/metrics.h"

#include "server/metrics/build_info.h"

namespace segserve::metrics {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,   1.0,    2.5,   5.0,  10.0,  30.0, 60.0};
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  grpc_requests_ = &prometheus::BuildCounter()
                        .Name("segserve_grpc_requests_total")
                        .Help("gRPC requests handled, by full method name and status code.")
                        .Register(*registry_);
  grpc_duration_ = &prometheus::BuildHistogram()
                        .Name("segserve_grpc_request_duration_seconds")
                        .Help("Server-side gRPC call duration, by full method name.")
                        .Register(*registry_);
  prometheus::BuildGauge()
      .Name("segserve_build_info")
      .Help("Build information; the value is always 1.")
      .Register(*registry_)
      .Add({{"version", kVersion}, {"git_commit", kGitCommit}, {"compiler", kCompiler}})
      .Set(1);
}

void Metrics::RecordRpc(const std::string& method, const std::string& code, double seconds) {
  grpc_requests_->Add({{"method", method}, {"code", code}}).Increment();
  grpc_duration_->Add({{"method", method}}, LatencyBuckets()).Observe(seconds);
}

}  // namespace segserve::metrics
