// File: server/api/interceptor.h — the server interceptor that gives every RPC, present
// and future, a request id, an access-log line and its Prometheus request metrics.
#pragma once

#include <atomic>
#include <cstdint>

#include "grpcpp/support/server_interceptor.h"
#include "server/metrics/metrics.h"

namespace segserve::api {

class RequestInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `inflight`, when given, counts the calls that have started and not yet finished.
  explicit RequestInterceptorFactory(metrics::Metrics& metrics,
                                     std::atomic<int64_t>* inflight = nullptr)
      : metrics_(metrics), inflight_(inflight) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  metrics::Metrics& metrics_;
  std::atomic<int64_t>* inflight_;
};

}  // namespace segserve::api
