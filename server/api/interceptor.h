// File: server/api/interceptor.h — the server interceptor that gives every RPC, present
// and future, a request id, an access-log line and its Prometheus request metrics.
#pragma once

#include "grpcpp/support/server_interceptor.h"
#include "server/metrics/metrics.h"

namespace segserve::api {

class RequestInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RequestInterceptorFactory(metrics::Metrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  metrics::Metrics& metrics_;
};

}  // namespace segserve::api
