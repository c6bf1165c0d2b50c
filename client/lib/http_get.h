// File: client/lib/http_get.h — a minimal HTTP/1.0 GET, for scraping /metrics (segctl bench,
// tests) without an HTTP client dependency.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace segserve::client {

// GET http://<host>:<port><path> (host: an IPv4 address); returns the body of a 200 response.
absl::StatusOr<std::string> HttpGet(const std::string& host, int port, const std::string& path);
// GET from 127.0.0.1.
inline absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  return HttpGet("127.0.0.1", port, path);
}

// The value of the sample whose line starts with `series` (name plus labels exactly as
// exposed, e.g. `segserve_grpc_requests_total{code="OK",method="/x"}`), or -1 if absent.
double SampleValue(const std::string& exposition, const std::string& series);

}  // namespace segserve::client
