// File: server/api/status_mapping.h — the one place where absl::Status becomes a gRPC
// status. Codes map one to one (they share numbering); messages of server-side faults
// are replaced by a generic text with the request id, the detail goes to the log.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"

namespace segserve::api {

// Client-facing status for `status`. For INTERNAL and UNKNOWN the message is "internal
// error (request id <id>)" and the detail is logged; every other code keeps its message
// (it names the field and the limit; DATA_LOSS says which stored file failed its checksum,
// which an operator needs and which reveals nothing the caller could not list).
grpc::Status ToGrpcStatus(const absl::Status& status, const std::string& request_id);

// Finishes a unary callback call at once with `status` (mapped as above, with the call's
// request id) and returns the reactor for the handler to return.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::Status& status);

// The gRPC code name as Prometheus labels and logs spell it ("OK", "NOT_FOUND", ...).
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace segserve::api
