// File: server/api/pool_call.h — finishing a unary call from a worker pool: handlers whose
// work blocks (file removal, model loads) hand it to the control pool instead of running it
// on a gRPC thread; a full pool answers RESOURCE_EXHAUSTED at once.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/server_callback.h"
#include "server/api/request_id.h"
#include "server/api/status_mapping.h"
#include "server/common/thread_pool.h"

namespace segserve::api {

// Runs `work` on `pool` and finishes the call's default reactor with its status. Returns
// the reactor for the handler to return.
inline grpc::ServerUnaryReactor* RunUnaryOnPool(grpc::CallbackServerContext* context,
                                                common::ThreadPool& pool,
                                                std::function<absl::Status()> work) {
  auto* reactor = context->DefaultReactor();
  const std::string request_id = RequestId(*context);
  const bool scheduled = pool.TrySchedule([reactor, work = std::move(work), request_id] {
    reactor->Finish(ToGrpcStatus(work(), request_id));
  });
  if (!scheduled) {
    reactor->Finish(ToGrpcStatus(
        absl::ResourceExhaustedError("too many control operations queued; retry later"),
        request_id));
  }
  return reactor;
}

}  // namespace segserve::api
