// File: server/api/failed_reactors.h — reactors for streaming calls that are refused
// before they start (bad request, auth, stream limit): finish at once with the status.
#pragma once

#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"

namespace segserve::api {

template <typename Response>
class FailedWriteReactor final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FailedWriteReactor(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

template <typename Request>
class FailedReadReactor final : public grpc::ServerReadReactor<Request> {
 public:
  explicit FailedReadReactor(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

template <typename Request, typename Response>
class FailedBidiReactor final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit FailedBidiReactor(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace segserve::api
