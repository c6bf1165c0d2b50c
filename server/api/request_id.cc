#include "server/api/request_id.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

namespace segserve::api {

std::string NewRequestId() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t seed = std::random_device{}() ^
                               static_cast<uint64_t>(
                                   std::chrono::steady_clock::now().time_since_epoch().count());
  uint64_t x = seed + 0x9e3779b97f4a7c15ULL * (counter.fetch_add(1) + 1);
  // splitmix64 finaliser: unique per counter value, unpredictable enough for log ids.
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(x));
  return text;
}

std::string RequestId(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kRequestIdHeader);
  if (it == metadata.end()) return "-";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace segserve::api
