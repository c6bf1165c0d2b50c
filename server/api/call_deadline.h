// File: server/api/call_deadline.h — a call's gRPC deadline on the serving core's clock
// (steady), for the engine's deadline checks; no deadline is time_point::max().
#pragma once

#include <chrono>

#include "grpcpp/server_context.h"
#include "server/inference/work_item.h"

namespace segserve::api {

inline inference::Clock::time_point DeadlineOf(const grpc::ServerContextBase& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return inference::Clock::time_point::max();
  }
  return inference::Clock::now() + (deadline - std::chrono::system_clock::now());
}

}  // namespace segserve::api
