// File: tests/testing/server_process.h — runs the real segserve binary for black-box
// tests: a temp data dir, loopback ports chosen by the kernel (port 0, read back from
// --port_file), and signal-driven shutdown with the exit status.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace segserve::testing {

// A fresh directory under /tmp, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class ServerProcess {
 public:
  // Starts `binary` with the given data dir and extra flags; returns once the server has
  // written its port file (or fails after `startup_timeout`). Without an --auth_* flag
  // among `extra_flags` the server runs with --auth_disabled; a --port_file among them
  // replaces <data_dir>/ports.json (replicas sharing a data dir).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, const std::string& data_dir,
      const std::vector<std::string>& extra_flags = {},
      std::chrono::seconds startup_timeout = std::chrono::seconds(60));
  // Kills the process (SIGKILL) if still running.
  ~ServerProcess();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  std::string grpc_target() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  pid_t pid() const { return pid_; }
  // One sample of the server's /metrics: -1 when the series is absent, -2 when the scrape
  // failed.
  double Metric(const std::string& series) const;

  // Sends `signal` and waits up to `timeout` for exit. Returns the exit code, or
  // DeadlineExceeded when still running, or Internal when killed by a signal.
  absl::StatusOr<int> Stop(int signal, std::chrono::milliseconds timeout);

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
};

// The segserve binary of this build tree.
std::string SegserveBinary();
// The segctl binary of this build tree.
std::string SegctlBinary();

}  // namespace segserve::testing
