// File: server/metrics/metrics.h — the process's Prometheus registry and the metric
// families every component records into. Components receive a `Metrics&` from the
// composition root (server/app) and never create registries of their own.
#pragma once

#include <memory>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace segserve::metrics {

// Latency buckets in seconds, 0.5 ms .. 60 s.
prometheus::Histogram::BucketBoundaries LatencyBuckets();

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // One finished RPC: `method` is the full gRPC method ("/segserve.v1.Models/List"),
  // `code` the gRPC status name ("OK", "NOT_FOUND", ...).
  void RecordRpc(const std::string& method, const std::string& code, double seconds);

  // Families shared by several components.
  prometheus::Family<prometheus::Counter>& grpc_requests() { return *grpc_requests_; }
  prometheus::Family<prometheus::Histogram>& grpc_duration() { return *grpc_duration_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* grpc_requests_;
  prometheus::Family<prometheus::Histogram>* grpc_duration_;
};

}  // namespace segserve::metrics
