// File: tests/testing/http_get.h — a minimal HTTP/1.0 GET over loopback, for scraping
// /metrics in tests without extra dependencies.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace segserve::testing {

// GET http://127.0.0.1:<port><path>; returns the body of a 200 response.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

// The value of the sample whose line starts with `series` (name plus labels exactly as
// exposed, e.g. `segserve_grpc_requests_total{code="OK",method="/x"}`), or -1 if absent.
double SampleValue(const std::string& exposition, const std::string& series);

}  // namespace segserve::testing
