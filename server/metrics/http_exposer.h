// File: server/metrics/http_exposer.h — serves the Prometheus text exposition of our
// registries on GET /metrics over plain HTTP/1.1.
//
// Why not prometheus::Exposer: it runs civetweb, whose worker threads are created with a
// fixed ~100 KiB stack; once LibTorch is linked into the process its static TLS no longer
// fits in that stack and pthread_create fails ("Cannot create first worker thread").
// Scrapes are small and infrequent, so one thread handling connections in turn suffices.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/collectable.h"

namespace segserve::metrics {

class HttpExposer {
 public:
  // Listens on `address` ("host:port"; port 0 picks a free port).
  static absl::StatusOr<std::unique_ptr<HttpExposer>> Start(const std::string& address);
  ~HttpExposer();
  HttpExposer(const HttpExposer&) = delete;
  HttpExposer& operator=(const HttpExposer&) = delete;

  void RegisterCollectable(const std::weak_ptr<prometheus::Collectable>& collectable);
  int port() const { return port_; }

 private:
  HttpExposer(int fd, int port);
  void Serve();
  void Handle(int client);
  std::string Exposition();

  const int listen_fd_;
  const int port_;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  std::vector<std::weak_ptr<prometheus::Collectable>> collectables_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace segserve::metrics
