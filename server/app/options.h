// File: server/app/options.h — segserve's command-line flags and the validated options
// they produce. Flags are parsed once in main; everything else takes ServerOptions.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/common/log.h"
#include "server/lifecycle/retention.h"
#include "server/registry/model_store.h"
#include "server/registry/precision.h"

namespace segserve::app {

struct ServerOptions {
  std::string listen_address = "0.0.0.0:50051";
  std::string metrics_address = "0.0.0.0:9090";
  std::string data_dir = "./var";
  // Job store: empty = SQLite in data_dir/jobs.db; otherwise a PostgreSQL connection string
  // (URL or key=value, no password in it) and the file holding its password (may be empty:
  // libpq's PGPASSFILE / ~/.pgpass).
  std::string database;
  std::string database_password_file;
  // With --database the model registry is in PostgreSQL too; --blob_store says where its
  // checkpoint bytes live (a shared directory under data_dir, or large objects).
  registry::BlobBackend blob_store = registry::BlobBackend::kDirectory;
  // --roles: serve (inference, models, job RPCs), train (job workers); both by default.
  // Without train there are no workers (needs --database: other replicas run the jobs).
  bool serve_role = true;
  bool train_role = true;
  int job_lease_seconds = 30;
  // --database with the serve role: rescan the shared model store this often and load the
  // new versions and alias targets of --load_models (all models when empty); 0 = off.
  int registry_sync_seconds = 2;  // --database: a dead worker's job is re-queued after ~4/3 of it
  std::string device = "cpu";  // "cpu" or "cuda:N".
  int intra_op_threads = 0;    // 0 = number of cores.
  int64_t max_message_bytes = 64ll << 20;
  int64_t max_model_bytes = 1ll << 30;  // Models.ImportStream's file limit
  common::LogLevel log_level = common::LogLevel::kInfo;
  double drain_seconds = 10;   // graceful-shutdown budget for in-flight calls.
  std::string port_file;       // where to write the bound ports (JSON), if set.
  // TLS on the gRPC port (PEM files); tls_client_ca additionally requires client certs.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Bearer tokens (server/auth/token_file.h); exactly one of the two must be set.
  std::string auth_tokens_file;
  bool auth_disabled = false;
  int max_streams_per_client = 32;  // streaming calls per client

  // Inference.
  int max_batch_size = 8;
  int max_background_batch_size = 1;
  double max_queue_delay_ms = 2;
  int max_queue = 256;
  int tile_size = 512;
  double tile_overlap = 0.25;
  int64_t max_image_pixels = 4096ll * 4096;
  int max_tiles_per_request = 1024;
  int max_stream_inflight = 32;
  int cpu_threads = 2;  // pre/post-processing pool
  // Serving arithmetic per loaded version (server/registry/precision.h).
  registry::PrecisionMode precision = registry::PrecisionMode::kFp32;
  double bf16_max_iou_drop = 0.01;
  // CPU tensors from the retained heap (server/model/tensor_memory.h), else LibTorch's own
  // allocator.
  bool retained_tensor_heap = true;

  // Jobs.
  int training_slots = 1;
  int max_queued_jobs = 64;
  bool bootstrap = true;  // quick-start data set + experiment on an empty data dir
  int bootstrap_images = 240, bootstrap_size = 128, bootstrap_epochs = 12, bootstrap_max_steps = 0;
  int max_analyze_images = 256;  // per set, for the synchronous Susceptibility.Analyze
  int drift_window = 256;  // 0 = live domain-shift monitoring off

  // Lifecycle of files under data_dir (server/lifecycle).
  lifecycle::KeepCheckpoints keep_run_checkpoints = lifecycle::KeepCheckpoints::kNone;
  std::chrono::seconds failed_run_retention{7 * 24 * 3600};
  std::chrono::seconds retention_sweep_interval{3600};
  std::chrono::seconds disk_usage_interval{60};

  // Data sets.
  int64_t max_dataset_bytes = 2ll << 30;  // Datasets.Upload: files of one set, in bytes

  // Models.
  std::vector<std::pair<std::string, std::string>> aliases;  // alias -> name[:version]
  std::vector<std::string> load_models;  // empty = every model in the store
};

// Validates the current flag values and returns them as options. Each error names the
// flag and its limit.
absl::StatusOr<ServerOptions> OptionsFromFlags();

// "cpu" or "cuda:N" (N >= 0)?
bool IsValidDevice(const std::string& device);

}  // namespace segserve::app
