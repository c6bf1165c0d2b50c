#include "server/app/options.h"

#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/dir_util.h"
#include "server/postgres/conninfo.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "gRPC listen address host:port; port 0 picks a free port (see --port_file).");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9090",
          "Prometheus /metrics HTTP listen address host:port (plaintext); port 0 picks a "
          "free port.");
ABSL_FLAG(std::string, data_dir, "./var",
          "Directory owning all server state: jobs.db, models/, datasets/, runs/. Created "
          "if missing.");
ABSL_FLAG(std::string, database, "",
          "Job store and model registry in PostgreSQL instead of SQLite and files in "
          "--data_dir: a postgresql:// URL or libpq key=value string (PG* environment "
          "variables fill what it omits). Must not contain a password: use "
          "--database_password_file or PGPASSFILE. The schema is migrated at start. Empty "
          "(default): SQLite <data_dir>/jobs.db and <data_dir>/models.");
ABSL_FLAG(std::string, blob_store, "directory",
          "With --database: where model and training checkpoints live. directory: files "
          "under <data_dir>/blobs/models and <data_dir>/runs (a volume every replica "
          "mounts); large_object: PostgreSQL large objects in --database (no shared volume "
          "needed for models or for resuming a job on another trainer).");
ABSL_FLAG(std::string, database_password_file, "",
          "File whose first line is the password for --database (mode 0600 recommended). "
          "Empty: libpq's own sources (PGPASSFILE, ~/.pgpass).");
ABSL_FLAG(std::string, roles, "serve,train",
          "What this replica does: serve (segmentation, models, job submission and queries), "
          "train (runs jobs in --training_slots workers), or both. A replica without the "
          "train role needs --database: on one box nobody else would run its jobs.");
ABSL_FLAG(int, job_lease_seconds, 30,
          "With --database: a running job's lease, renewed every third of it; a job whose "
          "worker died or was paused is re-queued after at most about 4/3 of it. 3..3600.");
ABSL_FLAG(int, registry_sync_seconds, 2,
          "With --database and the serve role: how often to rescan the shared model store and "
          "load new versions and alias targets of --load_models (every model and alias when "
          "empty), unloading the versions they replace. 0 = off. 0..3600.");
ABSL_FLAG(std::string, device, "cpu", "Compute device: cpu or cuda:N.");
ABSL_FLAG(int, threads, 0,
          "Intra-op threads for model compute (LibTorch); 0 = one per core. 0..256.");
ABSL_FLAG(int64_t, max_message_bytes, 64ll << 20,
          "Largest gRPC message accepted or sent, in bytes (default 64 MiB: a 4096x4096 RGB "
          "image as raw bytes). 1 MiB..1 GiB.");
ABSL_FLAG(int64_t, max_model_bytes, 1ll << 30,
          "Largest state-dict file Models.ImportStream accepts, in bytes (default 1 GiB; an "
          "smp resnet34 Unet is 98 MB). 1 MiB..64 GiB.");
ABSL_FLAG(std::string, log_level, "info", "Log level: debug, info, warning or error.");
ABSL_FLAG(double, drain_seconds, 10,
          "On SIGTERM/SIGINT: seconds in-flight calls may take to finish before they are "
          "cancelled. 0..600.");
ABSL_FLAG(std::string, port_file, "",
          "If set, write {\"grpc_port\":N,\"metrics_port\":M} to this file once serving "
          "(for scripts and tests that use port 0).");

ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain for TLS on the gRPC port (with --tls_key). Metrics stay "
          "plaintext on --metrics_listen.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: require and verify client certificates (mutual TLS). Needs "
          "--tls_cert.");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "Bearer tokens with roles (viewer, segmenter, trainer, admin), one 'name role "
          "sha256:<hex>' line each (`segctl auth new-token` makes one). Re-read on SIGHUP. "
          "Health and reflection stay open. One of --auth_tokens_file and --auth_disabled is "
          "required.");
ABSL_FLAG(bool, auth_disabled, false,
          "Serve without authentication: every caller may do everything. For loopback "
          "quick starts and tests only.");
ABSL_FLAG(int, max_streams_per_client, 32,
          "Concurrent streaming calls (SegmentStream, WatchJob, Models.ImportStream/Export, "
          "Datasets.Upload) one client may hold (client = token name, or the peer IP with "
          "--auth_disabled). 1..100000.");
ABSL_FLAG(int, max_batch_size, 8, "Largest batch the dynamic batcher forms. 1..256.");
ABSL_FLAG(int, max_background_batch_size, 1,
          "Largest batch of background work (analyses, training evaluation). A Segment request "
          "that arrives while such a batch runs waits for it, so keep it small. "
          "1..max_batch_size.");
ABSL_FLAG(double, max_queue_delay_ms, 2,
          "How long the first request of a batch waits for companions, in ms. 0..1000.");
ABSL_FLAG(int, max_queue, 256,
          "Requests (or first tiles) waiting for the model at once; beyond it Segment answers "
          "RESOURCE_EXHAUSTED at once. 1..100000.");
ABSL_FLAG(int, tile_size, 512,
          "Default sliding-window tile side for large images, pixels. Multiple of 32, 64..2048.");
ABSL_FLAG(double, tile_overlap, 0.25, "Default overlap between neighbouring tiles. 0..0.75.");
ABSL_FLAG(int64_t, max_image_pixels, 4096ll * 4096,
          "Largest image accepted, in pixels (checked from the header before decoding). "
          "1..268435456.");
ABSL_FLAG(int, max_tiles_per_request, 1024, "Most tiles one image may be split into. 1..100000.");
ABSL_FLAG(int, max_stream_inflight, 32,
          "Images of one SegmentStream in flight at once; beyond it the server stops reading "
          "(gRPC flow control pushes back). 1..1024.");
ABSL_FLAG(int, cpu_threads, 2, "Threads decoding and post-processing images. 1..256.");
ABSL_FLAG(std::string, precision, "fp32",
          "Serving arithmetic: fp32; bf16 (about 2x faster on CPUs with AVX-512 BF16 or AMX); "
          "or auto: bf16 for each model version whose own bf16 test-IoU check (training with "
          "bf16_check) dropped by at most --bf16_max_iou_drop, on a device with fast bf16, "
          "else fp32.");
ABSL_FLAG(double, bf16_max_iou_drop, 0.01,
          "--precision=auto: largest fp32 - bf16 test IoU drop that still serves bf16. 0..1.");
ABSL_FLAG(bool, bf16, false, "Same as --precision=bf16 (kept for older command lines).");
ABSL_FLAG(std::string, tensor_allocator, "retained",
          "Where CPU tensors get their memory: retained (glibc's heap kept between steps and "
          "batches instead of faulting every activation in again, given back when a training "
          "job ends; docs/PERFORMANCE.md \"The tensor allocator\") or libtorch (LibTorch's own "
          "allocator).");
ABSL_FLAG(std::string, aliases, "",
          "Comma-separated alias=model[:version] pairs set at start, e.g. "
          "baseline=plasmo-l0,l1-pruned=plasmo-l1 (persisted in models/aliases.json).");
ABSL_FLAG(std::string, load_models, "",
          "Comma-separated model names to load at start; empty = every model in the store.");

ABSL_FLAG(int, training_slots, 1, "Jobs (training, analysis, generation) run at once. 1..64.");
ABSL_FLAG(int, max_queued_jobs, 64,
          "Queued jobs beyond which submissions get RESOURCE_EXHAUSTED. 1..100000.");
ABSL_FLAG(int, max_analyze_images, 256,
          "Images per set the synchronous Susceptibility.Analyze accepts; larger analyses run "
          "as jobs (SubmitAnalysis). 1..100000.");
ABSL_FLAG(int, drift_window, 256,
          "Images in the sliding window of live domain-shift monitoring "
          "(segserve_domain_shift_hellinger{model,layer}) for models with training reference "
          "statistics; 0 turns monitoring off. 0..65535.");
ABSL_FLAG(bool, bootstrap, true,
          "On an empty --data_dir, generate a synthetic plasmodium data set and run a quick "
          "experiment on it (resnet18 L0 and L1, seeds 1 and 2, graded shifts; aliases baseline "
          "and l1-pruned). Turn off in production.");
ABSL_FLAG(int, bootstrap_images, 240, "--bootstrap: images of the quick-start data set. 8..10000.");
ABSL_FLAG(int, bootstrap_size, 128,
          "--bootstrap: image side of the quick-start data set, a multiple of 32 in 64..512.");
ABSL_FLAG(int, bootstrap_epochs, 12, "--bootstrap: epochs of each quick-start training. 1..1000.");
ABSL_FLAG(int, bootstrap_max_steps, 0,
          "--bootstrap: cap on steps per epoch (0 = every batch; for smoke tests). 0..100000.");

ABSL_FLAG(std::string, keep_run_checkpoints, "none",
          "What a training job's run directory (<data_dir>/runs/<job>/) keeps once its model "
          "is registered: none (the registered model is the product), best (best.ckpt) or "
          "all.");
ABSL_FLAG(std::string, failed_run_retention, "7d",
          "How long failed and cancelled jobs keep their run directory (last checkpoint) for "
          "inspection, e.g. 7d, 36h; a background sweep removes older ones. 0 = at the next "
          "sweep.");
ABSL_FLAG(std::string, retention_sweep_interval, "1h",
          "How often the run-directory retention sweep runs, e.g. 1h, 10m. 1s..7d.");
ABSL_FLAG(std::string, disk_usage_interval, "60s",
          "How often segserve_data_dir_bytes and segserve_data_dir_free_bytes are measured "
          "(they are also refreshed after each delete, import or finished job). 1s..1d.");
ABSL_FLAG(int64_t, max_dataset_bytes, 2ll << 30,
          "Largest data set Datasets.Upload accepts, in bytes of uploaded files (default "
          "2 GiB; one file at most 256 MiB). The set is staged on disk under "
          "<data_dir>/datasets/, never held in memory. 1 KiB..1 TiB.");

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
  options.max_model_bytes = absl::GetFlag(FLAGS_max_model_bytes);
  options.drain_seconds = absl::GetFlag(FLAGS_drain_seconds);
  options.port_file = absl::GetFlag(FLAGS_port_file);

  if (absl::Status s = CheckHostPort("listen", options.listen_address); !s.ok()) return s;
  if (absl::Status s = CheckHostPort("metrics_listen", options.metrics_address); !s.ok()) {
    return s;
  }
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("--data_dir: must not be empty");
  }
  options.database = absl::GetFlag(FLAGS_database);
  options.database_password_file = absl::GetFlag(FLAGS_database_password_file);
  if (!options.database.empty()) {
    if (absl::Status s = postgres::ValidateConnInfo(options.database); !s.ok()) return s;
  } else if (!options.database_password_file.empty()) {
    return absl::InvalidArgumentError("--database_password_file: needs --database");
  }
  {
    absl::StatusOr<registry::BlobBackend> blobs =
        registry::ParseBlobBackend(absl::GetFlag(FLAGS_blob_store), "--blob_store");
    if (!blobs.ok()) return blobs.status();
    if (*blobs != registry::BlobBackend::kDirectory && options.database.empty()) {
      return absl::InvalidArgumentError("--blob_store: large_object needs --database");
    }
    options.blob_store = *blobs;
  }
  options.serve_role = options.train_role = false;
  for (absl::string_view role : absl::StrSplit(absl::GetFlag(FLAGS_roles), ',')) {
    if (role == "serve") {
      options.serve_role = true;
    } else if (role == "train") {
      options.train_role = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--roles: expected a comma-separated list of serve and train, got '",
          absl::GetFlag(FLAGS_roles), "'"));
    }
  }
  if (!options.serve_role && !options.train_role) {
    return absl::InvalidArgumentError("--roles: needs serve, train or both");
  }
  if (!options.train_role && options.database.empty()) {
    return absl::InvalidArgumentError(
        "--roles: a replica without the train role needs --database (PostgreSQL shared with "
        "replicas that train); on one box nobody else would run its jobs");
  }
  options.job_lease_seconds = absl::GetFlag(FLAGS_job_lease_seconds);
  options.registry_sync_seconds = absl::GetFlag(FLAGS_registry_sync_seconds);
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
  if (options.max_model_bytes < (1ll << 20) || options.max_model_bytes > (64ll << 30)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_model_bytes: must be 1 MiB..64 GiB, got ", options.max_model_bytes));
  }
  if (!common::ParseLogLevel(absl::GetFlag(FLAGS_log_level), &options.log_level)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_level: expected debug, info, warning or error, got '",
                     absl::GetFlag(FLAGS_log_level), "'"));
  }
  options.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key: give both or neither");
  }
  if (!options.tls_client_ca.empty() && options.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls_client_ca: needs --tls_cert and --tls_key");
  }
  options.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens_file);
  options.auth_disabled = absl::GetFlag(FLAGS_auth_disabled);
  if (options.auth_tokens_file.empty() == !options.auth_disabled) {
    return absl::InvalidArgumentError(
        options.auth_disabled
            ? "--auth_disabled and --auth_tokens_file: give one, not both"
            : "authentication: give --auth_tokens_file=FILE (README, 'Security') or, for a "
              "loopback quick start, --auth_disabled");
  }
  options.max_streams_per_client = absl::GetFlag(FLAGS_max_streams_per_client);
  options.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  options.max_background_batch_size = absl::GetFlag(FLAGS_max_background_batch_size);
  options.max_queue_delay_ms = absl::GetFlag(FLAGS_max_queue_delay_ms);
  options.max_queue = absl::GetFlag(FLAGS_max_queue);
  options.tile_size = absl::GetFlag(FLAGS_tile_size);
  options.tile_overlap = absl::GetFlag(FLAGS_tile_overlap);
  options.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  options.max_tiles_per_request = absl::GetFlag(FLAGS_max_tiles_per_request);
  options.max_stream_inflight = absl::GetFlag(FLAGS_max_stream_inflight);
  options.cpu_threads = absl::GetFlag(FLAGS_cpu_threads);
  {
    absl::StatusOr<registry::PrecisionMode> precision =
        registry::ParsePrecisionMode(absl::GetFlag(FLAGS_precision), "--precision");
    if (!precision.ok()) return precision.status();
    options.precision = *precision;
    if (absl::GetFlag(FLAGS_bf16)) {
      if (options.precision == registry::PrecisionMode::kAuto) {
        return absl::InvalidArgumentError("--bf16: conflicts with --precision=auto; give one");
      }
      options.precision = registry::PrecisionMode::kBf16;
    }
    options.bf16_max_iou_drop = absl::GetFlag(FLAGS_bf16_max_iou_drop);
  }
  {
    const std::string allocator = absl::GetFlag(FLAGS_tensor_allocator);
    if (allocator != "retained" && allocator != "libtorch") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tensor_allocator: must be retained or libtorch, not \"", allocator, "\""));
    }
    options.retained_tensor_heap = allocator == "retained";
    if (!(options.bf16_max_iou_drop >= 0 && options.bf16_max_iou_drop <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--bf16_max_iou_drop: must be 0..1, got ", options.bf16_max_iou_drop));
    }
  }
  options.training_slots = absl::GetFlag(FLAGS_training_slots);
  options.max_queued_jobs = absl::GetFlag(FLAGS_max_queued_jobs);
  options.bootstrap = absl::GetFlag(FLAGS_bootstrap);
  options.bootstrap_images = absl::GetFlag(FLAGS_bootstrap_images);
  options.bootstrap_size = absl::GetFlag(FLAGS_bootstrap_size);
  options.bootstrap_epochs = absl::GetFlag(FLAGS_bootstrap_epochs);
  options.bootstrap_max_steps = absl::GetFlag(FLAGS_bootstrap_max_steps);
  options.max_analyze_images = absl::GetFlag(FLAGS_max_analyze_images);
  options.drift_window = absl::GetFlag(FLAGS_drift_window);
  options.max_dataset_bytes = absl::GetFlag(FLAGS_max_dataset_bytes);
  struct IntRange {
    const char* flag;
    int64_t value, low, high;
  };
  for (const IntRange& r :
       {IntRange{"max_batch_size", options.max_batch_size, 1, 256},
        IntRange{"max_background_batch_size", options.max_background_batch_size, 1,
                 options.max_batch_size},
        IntRange{"max_queue", options.max_queue, 1, 100000},
        IntRange{"tile_size", options.tile_size, 64, 2048},
        IntRange{"max_image_pixels", options.max_image_pixels, 1, 1ll << 28},
        IntRange{"max_tiles_per_request", options.max_tiles_per_request, 1, 100000},
        IntRange{"max_stream_inflight", options.max_stream_inflight, 1, 1024},
        IntRange{"max_streams_per_client", options.max_streams_per_client, 1, 100000},
        IntRange{"cpu_threads", options.cpu_threads, 1, 256},
        IntRange{"training_slots", options.training_slots, 1, 64},
        IntRange{"job_lease_seconds", options.job_lease_seconds, 3, 3600},
        IntRange{"registry_sync_seconds", options.registry_sync_seconds, 0, 3600},
        IntRange{"max_queued_jobs", options.max_queued_jobs, 1, 100000},
        IntRange{"max_analyze_images", options.max_analyze_images, 1, 100000},
        IntRange{"drift_window", options.drift_window, 0, 65535},
        IntRange{"bootstrap_images", options.bootstrap_images, 8, 10000},
        IntRange{"bootstrap_size", options.bootstrap_size, 64, 512},
        IntRange{"bootstrap_epochs", options.bootstrap_epochs, 1, 1000},
        IntRange{"bootstrap_max_steps", options.bootstrap_max_steps, 0, 100000},
        IntRange{"max_dataset_bytes", options.max_dataset_bytes, 1ll << 10, 1ll << 40}}) {
    if (r.value < r.low || r.value > r.high) {
      return absl::InvalidArgumentError(absl::StrCat("--", r.flag, ": must be ", r.low, "..",
                                                     r.high, ", got ", r.value));
    }
  }
  if (options.bootstrap_size % 32 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--bootstrap_size: must be a multiple of 32, got ", options.bootstrap_size));
  }
  if (options.tile_size % 32 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tile_size: must be a multiple of 32, got ", options.tile_size));
  }
  if (!(options.tile_overlap >= 0 && options.tile_overlap <= 0.75)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tile_overlap: must be 0..0.75, got ", options.tile_overlap));
  }
  if (!(options.max_queue_delay_ms >= 0 && options.max_queue_delay_ms <= 1000)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_queue_delay_ms: must be 0..1000, got ", options.max_queue_delay_ms));
  }
  for (absl::string_view entry :
       absl::StrSplit(absl::GetFlag(FLAGS_aliases), ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(entry, absl::MaxSplits('=', 1));
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--aliases: expected alias=model[:version], got '", std::string(entry), "'"));
    }
    options.aliases.emplace_back(parts[0], parts[1]);
  }
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_load_models), ',', absl::SkipEmpty())) {
    options.load_models.emplace_back(name);
  }
  {
    absl::StatusOr<lifecycle::KeepCheckpoints> keep =
        lifecycle::ParseKeepCheckpoints(absl::GetFlag(FLAGS_keep_run_checkpoints));
    if (!keep.ok()) return keep.status();
    options.keep_run_checkpoints = *keep;
    struct AgeFlag {
      const char* flag;
      std::string value;
      std::chrono::seconds* out;
      int64_t low, high;
    };
    for (const AgeFlag& f :
         {AgeFlag{"failed_run_retention", absl::GetFlag(FLAGS_failed_run_retention),
                  &options.failed_run_retention, 0, int64_t{3650} * 86400},
          AgeFlag{"retention_sweep_interval", absl::GetFlag(FLAGS_retention_sweep_interval),
                  &options.retention_sweep_interval, 1, 7 * 86400},
          AgeFlag{"disk_usage_interval", absl::GetFlag(FLAGS_disk_usage_interval),
                  &options.disk_usage_interval, 1, 86400}}) {
      absl::StatusOr<std::chrono::seconds> age =
          common::ParseAge(f.value, absl::StrCat("--", f.flag));
      if (!age.ok()) return age.status();
      if (age->count() < f.low || age->count() > f.high) {
        return absl::InvalidArgumentError(absl::StrCat("--", f.flag, ": must be ", f.low, "..",
                                                       f.high, " seconds, got ", f.value));
      }
      *f.out = *age;
    }
  }
  if (!(options.drain_seconds >= 0 && options.drain_seconds <= 600)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--drain_seconds: must be 0..600, got ", options.drain_seconds));
  }
  return options;
}

}  // namespace segserve::app
