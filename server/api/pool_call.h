// File: server/api/pool_call.h — finishing a unary call from a worker pool: handlers whose
// work blocks (job-store reads and writes, data-set scans, file removal, model loads) hand
// it to a pool instead of running it on a gRPC thread; a full pool answers
// RESOURCE_EXHAUSTED at once, so a gRPC thread never waits for a slot either.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/server_callback.h"
#include "server/api/request_id.h"
#include "server/api/status_mapping.h"
#include "server/common/thread_pool.h"

namespace segserve::api {

// RESOURCE_EXHAUSTED text of the store pool (job store and data-directory reads).
inline constexpr const char* kStorePoolBusy =
    "too many job and data-set operations queued; retry later";

// Runs `work` on `pool` and finishes the call's default reactor with its status. Returns
// the reactor for the handler to return. The request and response stay valid until the
// reactor finishes, so `work` may use them. `busy` is the RESOURCE_EXHAUSTED message.
inline grpc::ServerUnaryReactor* RunUnaryOnPool(
    grpc::CallbackServerContext* context, common::ThreadPool& pool,
    std::function<absl::Status()> work,
    const char* busy = "too many control operations queued; retry later") {
  auto* reactor = context->DefaultReactor();
  const std::string request_id = RequestId(*context);
  const bool scheduled = pool.TrySchedule([reactor, work = std::move(work), request_id] {
    reactor->Finish(ToGrpcStatus(work(), request_id));
  });
  if (!scheduled) {
    reactor->Finish(ToGrpcStatus(absl::ResourceExhaustedError(busy), request_id));
  }
  return reactor;
}

}  // namespace segserve::api
