#include "server/app/options.h"

#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "gRPC listen address host:port; port 0 picks a free port (see --port_file).");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9090",
          "Prometheus /metrics HTTP listen address host:port (plaintext); port 0 picks a "
          "free port.");
ABSL_FLAG(std::string, data_dir, "./var",
          "Directory owning all server state: jobs.db, models/, datasets/, runs/. Created "
          "if missing.");
ABSL_FLAG(std::string, device, "cpu", "Compute device: cpu or cuda:N.");
ABSL_FLAG(int, threads, 0,
          "Intra-op threads for model compute (LibTorch); 0 = one per core. 0..256.");
ABSL_FLAG(int64_t, max_message_bytes, 64ll << 20,
          "Largest gRPC message accepted or sent, in bytes (default 64 MiB: a 4096x4096 RGB "
          "image as raw bytes). 1 MiB..1 GiB.");
ABSL_FLAG(std::string, log_level, "info", "Log level: debug, info, warning or error.");
ABSL_FLAG(double, drain_seconds, 10,
          "On SIGTERM/SIGINT: seconds in-flight calls may take to finish before they are "
          "cancelled. 0..600.");
ABSL_FLAG(std::string, port_file, "",
          "If set, write {\"grpc_port\":N,\"metrics_port\":M} to this file once serving "
          "(for scripts and tests that use port 0).");

namespace segserve::app {
namespace {

absl::Status CheckHostPort(const std::string& flag, const std::string& value) {
  const auto colon = value.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(value.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": expected host:port with port 0..65535, got '", value, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsValidDevice(const std::string& device) {
  if (device == "cpu") return true;
  int index = -1;
  return absl::StartsWith(device, "cuda:") && absl::SimpleAtoi(device.substr(5), &index) &&
         index >= 0;
}

absl::StatusOr<ServerOptions> OptionsFromFlags() {
  ServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.device = absl::GetFlag(FLAGS_device);
  options.intra_op_threads = absl::GetFlag(FLAGS_threads);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.drain_seconds = absl::GetFlag(FLAGS_drain_seconds);
  options.port_file = absl::GetFlag(FLAGS_port_file);

  if (absl::Status s = CheckHostPort("listen", options.listen_address); !s.ok()) return s;
  if (absl::Status s = CheckHostPort("metrics_listen", options.metrics_address); !s.ok()) {
    return s;
  }
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("--data_dir: must not be empty");
  }
  if (!IsValidDevice(options.device)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--device: expected cpu or cuda:N, got '", options.device, "'"));
  }
  if (options.intra_op_threads < 0 || options.intra_op_threads > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads: must be 0..256, got ", options.intra_op_threads));
  }
  if (options.intra_op_threads == 0) {
    options.intra_op_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (options.max_message_bytes < (1ll << 20) || options.max_message_bytes > (1ll << 30)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_message_bytes: must be 1 MiB..1 GiB, got ", options.max_message_bytes));
  }
  if (!common::ParseLogLevel(absl::GetFlag(FLAGS_log_level), &options.log_level)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_level: expected debug, info, warning or error, got '",
                     absl::GetFlag(FLAGS_log_level), "'"));
  }
  if (!(options.drain_seconds >= 0 && options.drain_seconds <= 600)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--drain_seconds: must be 0..600, got ", options.drain_seconds));
  }
  return options;
}

}  // namespace segserve::app
