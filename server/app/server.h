// File: server/app/server.h — the composition root: builds every component from
// ServerOptions, wires them into one gRPC server plus the metrics exposer, and owns
// their lifetime. Used by main and, in-process, by tests.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "server/api/access_control.h"
#include "server/app/options.h"
#include "server/auth/token_authenticator.h"
#include "server/common/thread_pool.h"
#include "server/app/drift_observer.h"
#include "server/inference/batch_scheduler.h"
#include "server/inference/engine.h"
#include "server/inference/executor.h"
#include "server/lifecycle/disk_usage.h"
#include "server/lifecycle/retention.h"
#include "server/metrics/http_exposer.h"
#include "server/metrics/metrics.h"
#include "server/registry/model_store.h"
#include "server/registry/follower.h"
#include "server/registry/registry.h"
#include "server/scheduler/scheduler.h"
#include "server/data/dataset_index.h"
#include "server/training/run_checkpoints.h"
#include "server/susceptibility/analyze_datasets.h"
#include "server/susceptibility/drift_monitor.h"

namespace segserve::app {

class Bootstrap;

class SegserveServer {
 public:
  // Starts serving; health turns SERVING once every component is ready.
  static absl::StatusOr<std::unique_ptr<SegserveServer>> Create(const ServerOptions& options);
  ~SegserveServer();
  SegserveServer(const SegserveServer&) = delete;
  SegserveServer& operator=(const SegserveServer&) = delete;

  int grpc_port() const { return grpc_port_; }
  registry::ModelRegistry& registry() { return *registry_; }
  scheduler::Scheduler& scheduler() { return *scheduler_; }
  int metrics_port() const { return metrics_port_; }
  metrics::Metrics& metrics() { return metrics_; }

  // Graceful stop: health NOT_SERVING, no new calls, in-flight calls get up to
  // options.drain_seconds, then are cancelled. Idempotent; safe from any thread.
  void Shutdown();

  // Re-reads --auth_tokens_file (SIGHUP). On error the tokens in force stay.
  absl::Status ReloadAuth();

 private:
  explicit SegserveServer(const ServerOptions& options);
  absl::Status Start();
  // --database's connection options for the store `what` names (its password from
  // --database_password_file, its metrics installed).
  absl::StatusOr<postgres::ConnectOptions> DatabaseOptions(const std::string& what);
  absl::Status BuildComponents();
  // Tokens (or --auth_disabled) and the per-client stream limit.
  absl::Status BuildAccessControl();
  // Plaintext, TLS or mutual TLS, from the --tls_* flags.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials() const;
  // Forward passes of analyses through the batching scheduler (background priority);
  // `admit`: counted against the background admission limit (Analyze RPCs, not jobs).
  susceptibility::TapMeansFn AnalysisForward(bool admit);
  // Loads the startup models on the control pool, then turns health SERVING.
  void BecomeReadyAsync();

  const ServerOptions options_;
  metrics::Metrics metrics_;
  std::unique_ptr<metrics::HttpExposer> exposer_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  std::unique_ptr<auth::TokenAuthenticator> authenticator_;  // null: --auth_disabled
  std::unique_ptr<api::AccessControl> access_;
  prometheus::Family<prometheus::Counter>* auth_reloads_ = nullptr;
  prometheus::Gauge* auth_tokens_ = nullptr;
  // Components, in construction order (destroyed in reverse, after the gRPC server).
  std::unique_ptr<registry::ModelStore> model_store_;
  std::unique_ptr<data::DatasetIndex> dataset_index_;
  std::unique_ptr<training::RunCheckpoints> run_checkpoints_;  // null: runs/ is shared
  std::unique_ptr<registry::ModelLoader> model_loader_;
  std::unique_ptr<registry::ModelRegistry> registry_;
  // --database with the serve role: follows versions and aliases other replicas write.
  std::unique_ptr<registry::RegistryFollower> follower_;
  bool FollowsRegistry() const {
    return options_.serve_role && !options_.database.empty() && options_.registry_sync_seconds > 0;
  }
  std::unique_ptr<susceptibility::DriftMonitor> drift_;
  std::unique_ptr<common::ThreadPool> cpu_pool_;
  std::unique_ptr<common::ThreadPool> control_pool_;
  std::unique_ptr<common::ThreadPool> analysis_pool_;  // Analyze RPCs (they block on results)
  std::unique_ptr<common::ThreadPool> upload_pool_;  // Datasets.Upload: writes, validation
  std::unique_ptr<common::ThreadPool> store_pool_;  // job-store and data-directory RPC work
  std::unique_ptr<DriftObserver> drift_observer_;
  std::unique_ptr<inference::BatchScheduler> batch_scheduler_;
  std::unique_ptr<inference::BatchRunner> batch_runner_;
  std::unique_ptr<inference::Executor> executor_;  // the one device's
  std::unique_ptr<inference::SegmentationEngine> engine_;
  std::unique_ptr<lifecycle::DiskUsageMonitor> disk_usage_;
  std::unique_ptr<lifecycle::RunRetention> retention_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  std::unique_ptr<Bootstrap> bootstrap_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::once_flag shutdown_once_;
  // Start-up finished and not shutting down: health SERVING, OIP ServerReady.
  std::atomic<bool> ready_{false};
  std::atomic<int64_t> inflight_calls_{0};  // counted by the request interceptor
};

}  // namespace segserve::app
