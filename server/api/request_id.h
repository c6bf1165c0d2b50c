// File: server/api/request_id.h — the per-call request id. The interceptor puts it into
// the call's client metadata (the client's `x-request-id`, or a new one) and into the
// response headers; handlers read it back with RequestId(ctx).
#pragma once

#include <string>

#include "grpcpp/server_context.h"

namespace segserve::api {

inline constexpr char kRequestIdHeader[] = "x-request-id";

// A new random id: 16 hex characters.
std::string NewRequestId();

// The call's request id (set by RequestInterceptor), or "-" when there is none.
std::string RequestId(const grpc::ServerContextBase& context);

}  // namespace segserve::api
