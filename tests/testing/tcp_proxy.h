// File: tests/testing/tcp_proxy.h — a loopback TCP proxy for network-fault tests: listens on
// 127.0.0.1 (port chosen by the kernel) and forwards each connection, byte for byte both
// ways, to a Unix socket (the test PostgreSQL's), so a process connected through it can be
// cut off from the database while every other process keeps its direct path.
//
// Cuts: Partition() is what a network partition looks like from both ends: nothing moves
// either way and nothing is closed, so a call in flight waits for its timeouts (the kernel
// still acknowledges what it receives: only a deadline of the caller's own ends the wait);
// new connections are not answered. Reset() closes every connection and each new one at
// once (a peer that restarted or a firewall that rejects). Heal() forwards again: what was
// sent during a partition is delivered then, and connections queued meanwhile are served.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace segserve::testing {

class TcpProxy {
 public:
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(const std::string& unix_socket);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  void Partition();
  void Reset();
  void Heal();
  // Connections accepted so far.
  int accepted() const { return accepted_.load(); }

 private:
  enum class Mode { kForward, kPartition, kReset, kStop };
  TcpProxy() = default;
  void SetMode(Mode mode);
  void Loop();

  std::string unix_socket_;
  int listen_fd_ = -1;
  int wake_read_ = -1;
  int wake_write_ = -1;
  int port_ = 0;
  std::atomic<Mode> mode_{Mode::kForward};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

}  // namespace segserve::testing
