#include "server/app/server.h"

#include <chrono>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/api/datasets_service.h"
#include "server/api/interceptor.h"
#include "server/api/models_service.h"
#include "server/api/oip_service.h"
#include "server/api/segmentation_service.h"
#include "server/api/susceptibility_service.h"
#include "server/api/training_service.h"
#include "server/app/bootstrap.h"
#include "server/app/synth_runner.h"
#include "server/common/dir_util.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/experiment/report.h"
#include "server/inference/background_forward.h"
#include "server/inference/torch_batch_runner.h"
#include "server/metrics/build_info.h"
#include "server/metrics/process_collector.h"
#include "server/model/device.h"
#include "server/model/tensor_memory.h"
#include "server/postgres/conninfo.h"
#include "server/postgres/database_metrics.h"
#include "server/scheduler/postgres_job_store.h"
#include "server/susceptibility/analysis_runner.h"
#include "server/training/postgres_run_checkpoints.h"
#include "server/training/training_runner.h"

namespace segserve::app {
namespace {

absl::Status WritePortFile(const std::string& path, int grpc_port, int metrics_port) {
  return common::WriteFileAtomically(
      path, absl::StrCat("{\"grpc_port\":", grpc_port, ",\"metrics_port\":", metrics_port, "}\n"));
}

}  // namespace

SegserveServer::SegserveServer(const ServerOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<SegserveServer>> SegserveServer::Create(
    const ServerOptions& options) {
  std::unique_ptr<SegserveServer> server(new SegserveServer(options));
  RETURN_IF_ERROR(server->Start());
  return server;
}

absl::StatusOr<postgres::ConnectOptions> SegserveServer::DatabaseOptions(const std::string& what) {
  postgres::ConnectOptions database;
  database.conninfo = options_.database;
  database.what = what;
  postgres::InstallDatabaseMetrics(database, metrics_);
  if (!options_.database_password_file.empty()) {
    ASSIGN_OR_RETURN(database.password,
                     postgres::ReadPasswordFile(options_.database_password_file));
  }
  return database;
}

absl::Status SegserveServer::BuildComponents() {
  // A device this build cannot use is an operator error: refuse to start, saying which
  // LibTorch this is, rather than serve nothing (every model load would fail).
  LOG(INFO) << "compute: " << model::TorchBuildSummary() << "; --device=" << options_.device;
  RETURN_IF_ERROR(model::CheckDevice(options_.device, "--device"));
  // Before the first tensor and the worker threads: every CPU tensor from here on comes
  // from a retained heap (tensor_memory.h; measured in docs/PERFORMANCE.md).
  if (options_.retained_tensor_heap) model::InstallTensorAllocator();
  LOG(INFO) << "tensor memory: "
            << (model::TensorAllocatorInstalled() ? "retained heap" : "LibTorch's allocator");
  RETURN_IF_ERROR(BuildAccessControl());
  registry::ModelStoreOptions store_options;
  if (!options_.database.empty()) {
    // The registry in PostgreSQL, shared by every replica (postgres_model_store.h).
    ASSIGN_OR_RETURN(store_options.database, DatabaseOptions("model registry database"));
    store_options.blobs = options_.blob_store;
  }
  ASSIGN_OR_RETURN(model_store_, registry::ModelStore::Open(options_.data_dir, store_options));
  data::DatasetIndexOptions index_options;
  if (!options_.database.empty()) {
    // The data-set index in PostgreSQL (postgres_dataset_index.h). The files stay on the
    // shared volume, or with large objects are stored in the database too, so replicas
    // without the volume fetch them.
    ASSIGN_OR_RETURN(index_options.database, DatabaseOptions("data-set index database"));
    index_options.files_in_database = options_.blob_store == registry::BlobBackend::kLargeObject;
  }
  ASSIGN_OR_RETURN(dataset_index_,
                   data::DatasetIndex::Open(options_.data_dir + "/datasets", index_options));
  registry::CheckpointModelLoader::Options loader_options;
  loader_options.device = options_.device;
  loader_options.intra_op_threads = options_.intra_op_threads;
  loader_options.precision.mode = options_.precision;
  loader_options.precision.max_iou_drop = options_.bf16_max_iou_drop;
  loader_options.precision.fast_bf16 = registry::DeviceHasFastBf16(options_.device);
  if (options_.precision == registry::PrecisionMode::kAuto) {
    LOG(INFO) << "--precision=auto: the device "
              << (loader_options.precision.fast_bf16 ? "has" : "has no")
              << " fast bf16 arithmetic; bf16 for versions whose test IoU drops by at most "
              << options_.bf16_max_iou_drop;
  }
  model_loader_ = std::make_unique<registry::CheckpointModelLoader>(loader_options);
  registry_ = std::make_unique<registry::ModelRegistry>(*model_store_, *model_loader_, metrics_);
  for (const auto& [alias, target] : options_.aliases) {
    registry::AliasTarget parsed{target, 0};
    if (auto colon = target.rfind(':'); colon != std::string::npos) {
      parsed.name = target.substr(0, colon);
      if (!absl::SimpleAtoi(target.substr(colon + 1), &parsed.version)) {
        return absl::InvalidArgumentError(absl::StrCat("--aliases: bad version in '", target, "'"));
      }
    }
    // An alias may name a model that training will register later: store it as given.
    RETURN_IF_ERROR(model_store_->SetAlias(alias, parsed));
  }
  if (options_.drift_window > 0) {
    susceptibility::DriftOptions drift_options;
    drift_options.window = options_.drift_window;
    drift_ = std::make_unique<susceptibility::DriftMonitor>(metrics_, drift_options);
    registry_->SetListener([this](const registry::LoadedModel& model, bool loaded) {
      const auto& metadata = model.stored.metadata;
      if (!loaded) {
        drift_->RemoveModel(model.key());
      } else if (metadata.contains("reference_stats")) {
        absl::Status s = drift_->SetReference(model.key(), metadata["reference_stats"]);
        if (!s.ok()) LOG(WARNING) << "no drift monitoring for " << model.key() << ": " << s;
      }
    });
  }
  cpu_pool_ = std::make_unique<common::ThreadPool>(options_.cpu_threads,
                                                   static_cast<size_t>(options_.max_queue) * 4);
  control_pool_ = std::make_unique<common::ThreadPool>(1, 64);
  analysis_pool_ = std::make_unique<common::ThreadPool>(1, 16);
  // Job-store reads and writes and data-directory scans of RPCs. Their own pool, so a long
  // model import on the control pool does not hold up job submission; two threads, so a
  // data-set listing proceeds while a job commit waits on the disk (the scheduler lets one
  // job-store call in at a time anyway). Bounded: a full queue answers RESOURCE_EXHAUSTED.
  store_pool_ = std::make_unique<common::ThreadPool>(2, 128);
  // Data-set uploads: chunk writes (short) and each upload's final validation (decodes
  // every image: seconds to minutes), kept off the store and control pools so that a big
  // upload holds up neither job RPCs nor model loads. A stream has at most one task queued.
  upload_pool_ = std::make_unique<common::ThreadPool>(2, 64);
  inference::SchedulerOptions batching_options;
  batching_options.max_batch_size = options_.max_batch_size;
  batching_options.max_background_batch_size = options_.max_background_batch_size;
  batching_options.max_queue_delay =
      std::chrono::microseconds(static_cast<int64_t>(options_.max_queue_delay_ms * 1000));
  batching_options.max_queue = static_cast<size_t>(options_.max_queue);
  // A second without a batch after work: the retained heap's free part goes back to the
  // kernel (the next batch faults its activations in once, as it always did before).
  if (model::TensorAllocatorInstalled()) batching_options.on_idle = model::ReleaseTensorMemory;
  batch_scheduler_ = std::make_unique<inference::BatchScheduler>(batching_options, metrics_);
  batch_runner_ = std::make_unique<inference::TorchBatchRunner>();
  // Drift monitoring observes executed batches; the inference library knows nothing of it.
  if (drift_) drift_observer_ = std::make_unique<DriftObserver>(*drift_);
  executor_ = std::make_unique<inference::Executor>(
      options_.device, *batch_scheduler_, *batch_runner_, metrics_, drift_observer_.get());
  inference::EngineOptions engine_options;
  engine_options.default_tile_size = options_.tile_size;
  engine_options.default_tile_overlap = options_.tile_overlap;
  engine_options.max_image_pixels = options_.max_image_pixels;
  engine_options.max_tiles_per_request = options_.max_tiles_per_request;
  engine_options.max_inflight_tiles = std::max(2 * options_.max_batch_size, 4);
  engine_ = std::make_unique<inference::SegmentationEngine>(engine_options, *batch_scheduler_,
                                                            *cpu_pool_);

  // Jobs: a corrupted job store is kept as it is and the job services answer
  // FAILED_PRECONDITION saying how to recover (an empty history would silently lose accepted
  // jobs); segmentation and models keep serving.
  training::TrainingOptions training_options;
  training_options.data_dir = options_.data_dir;
  training_options.datasets = dataset_index_.get();
  training_options.default_device = options_.device;
  training_options.intra_op_threads = options_.intra_op_threads;
  // Evaluation forward passes share the executor (and its priorities) with serving.
  training_options.eval_scheduler = batch_scheduler_.get();
  training_options.eval_device = options_.device;
  training_options.model_store = model_store_.get();
  if (!options_.database.empty() && options_.blob_store == registry::BlobBackend::kLargeObject) {
    // Trainers on their own disks: checkpoints go to large objects for whoever resumes.
    ASSIGN_OR_RETURN(postgres::ConnectOptions database, DatabaseOptions("run checkpoint database"));
    ASSIGN_OR_RETURN(run_checkpoints_, training::PostgresRunCheckpoints::Open(std::move(database)));
    training_options.run_checkpoints = run_checkpoints_.get();
  }
  training_options.on_registered = [this](const registry::StoredVersion& stored) {
    // Train-only replicas serve nothing; with the registry follower the new version is
    // loaded (and its predecessor unloaded) by the follower's next pass.
    if (!options_.serve_role || FollowsRegistry()) return;
    auto loaded = registry_->Load(stored.name, stored.version);
    if (!loaded.ok()) LOG(WARNING) << "trained model did not load: " << loaded.status();
  };
  scheduler::RunnerMap runners;
  runners[scheduler::JobKind::kTrain] =
      std::make_shared<training::TrainingRunner>(std::move(training_options));
  runners[scheduler::JobKind::kSynth] = std::make_shared<SynthRunner>(*dataset_index_);
  susceptibility::AnalysisRunnerOptions analysis_options;
  analysis_options.data_dir = options_.data_dir;
  analysis_options.datasets = dataset_index_.get();
  analysis_options.resolve = [this](const std::string& name, int64_t version) {
    return registry_->Resolve(name, version);
  };
  analysis_options.forward = AnalysisForward(/*admit=*/false);
  runners[scheduler::JobKind::kAnalysis] =
      std::make_shared<susceptibility::AnalysisRunner>(std::move(analysis_options));
  // Lifecycle: disk usage gauges and run-directory retention. Both exist before the
  // scheduler, whose workers report finished jobs to them from the start.
  disk_usage_ = std::make_unique<lifecycle::DiskUsageMonitor>(
      options_.data_dir,
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.disk_usage_interval),
      metrics_);
  lifecycle::RetentionOptions retention_options;
  retention_options.data_dir = options_.data_dir;
  retention_options.keep = options_.keep_run_checkpoints;
  retention_options.failed_run_retention = options_.failed_run_retention;
  retention_options.sweep_interval =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.retention_sweep_interval);
  retention_options.on_change = [this] { disk_usage_->Refresh(); };
  if (run_checkpoints_) {
    retention_options.forget_saved_checkpoints = [this](const std::string& job_id) {
      return run_checkpoints_->Remove(job_id);
    };
  }
  retention_ = std::make_unique<lifecycle::RunRetention>(std::move(retention_options), nullptr);
  scheduler::SchedulerOptions scheduler_options;
  scheduler_options.training_slots = options_.train_role ? options_.training_slots : 0;
  scheduler_options.max_queued_jobs = options_.max_queued_jobs;
  // PostgreSQL is shared by every replica: jobs are claimed under leases (scheduler.h).
  scheduler_options.shared_store = !options_.database.empty();
  scheduler_options.lease = std::chrono::seconds(options_.job_lease_seconds);
  scheduler_options.on_finished = [this](const scheduler::Job& job) {
    retention_->OnJobFinished(job);
    disk_usage_->Refresh();  // a trained model, a generated data set, run files
  };
  scheduler_options.experiment_report = [data_dir = options_.data_dir](
                                            const scheduler::Job& parent,
                                            const std::vector<scheduler::Job>& children) {
    return experiment::BuildAndStoreReport(data_dir, parent, children);
  };
  if (options_.database.empty()) {
    ASSIGN_OR_RETURN(scheduler_, scheduler::Scheduler::OpenSqlite(
                                     options_.data_dir + "/jobs.db", std::move(runners),
                                     scheduler_options, nullptr, &metrics_));
  } else {
    // PostgreSQL: a wrong or unreachable database fails the start with the reason (the
    // connect timeout bounds the wait); the scheduler does not know which store it has.
    ASSIGN_OR_RETURN(postgres::ConnectOptions database, DatabaseOptions("job database"));
    ASSIGN_OR_RETURN(std::unique_ptr<scheduler::PostgresJobStore> store,
                     scheduler::PostgresJobStore::Open(std::move(database)));
    LOG(INFO) << "job store: " << store->description();
    ASSIGN_OR_RETURN(scheduler_,
                     scheduler::Scheduler::Create(std::move(store), std::move(runners),
                                                  scheduler_options, nullptr, &metrics_));
  }
  retention_->Attach(scheduler_.get());
  if (FollowsRegistry()) {
    registry::FollowerOptions follow;
    follow.follow = options_.load_models;
    follow.interval = absl::Seconds(options_.registry_sync_seconds);
    follower_ = std::make_unique<registry::RegistryFollower>(*registry_, std::move(follow));
  }
  if (options_.bootstrap && !options_.database.empty()) {
    LOG(INFO) << "bootstrap: skipped with --database (replicas share the store; start the "
                 "quick start on a single box, or submit its experiment with segctl)";
  } else if (options_.bootstrap) {
    BootstrapOptions bootstrap_options;
    bootstrap_options.data_dir = options_.data_dir;
    bootstrap_options.images = options_.bootstrap_images;
    bootstrap_options.size = options_.bootstrap_size;
    bootstrap_options.epochs = options_.bootstrap_epochs;
    bootstrap_options.max_steps_per_epoch = options_.bootstrap_max_steps;
    bootstrap_ = std::make_unique<Bootstrap>(bootstrap_options, *scheduler_, *model_store_);
  }

  api::SegmentationServiceOptions segmentation_options;
  segmentation_options.max_image_pixels = options_.max_image_pixels;
  segmentation_options.max_stream_inflight = options_.max_stream_inflight;
  services_.push_back(
      std::make_unique<api::SegmentationService>(segmentation_options, *registry_, *engine_, *access_));
  // The Open Inference Protocol (KServe v2) on the same port and the same engine.
  api::OipServiceOptions oip_options;
  oip_options.limits.max_image_pixels = options_.max_image_pixels;
  oip_options.batching.preferred_batch_size = options_.max_batch_size;
  oip_options.batching.max_queue_delay_us =
      static_cast<int64_t>(options_.max_queue_delay_ms * 1000);
  oip_options.server_version = metrics::kVersion;
  oip_options.ready = [this] { return ready_.load(); };
  services_.push_back(
      std::make_unique<api::OipService>(std::move(oip_options), *registry_, *engine_, *access_));
  auto refresh_disk_usage = [this] { disk_usage_->Refresh(); };
  api::ModelsServiceOptions models_options;
  models_options.incoming_dir = options_.data_dir + "/incoming";
  models_options.max_model_bytes = options_.max_model_bytes;
  models_options.on_change = refresh_disk_usage;
  services_.push_back(std::make_unique<api::ModelsService>(*registry_, *control_pool_, *access_,
                                                           std::move(models_options)));
  api::SusceptibilityServiceOptions susceptibility_options;
  susceptibility_options.data_dir = options_.data_dir;
  susceptibility_options.datasets = dataset_index_.get();
  susceptibility_options.max_analyze_images = options_.max_analyze_images;
  susceptibility_options.max_image_pixels = options_.max_image_pixels;
  susceptibility_options.forward = AnalysisForward(/*admit=*/true);
  services_.push_back(std::make_unique<api::SusceptibilityService>(
      susceptibility_options, *registry_, *scheduler_, *analysis_pool_, *store_pool_, *access_));
  services_.push_back(std::make_unique<api::TrainingService>(
      *scheduler_, options_.data_dir, *access_, *store_pool_, retention_.get(), control_pool_.get(),
      dataset_index_.get()));
  data::UploadLimits upload_limits;
  upload_limits.max_dataset_bytes = options_.max_dataset_bytes;
  upload_limits.max_pixels = options_.max_image_pixels;
  services_.push_back(std::make_unique<api::DatasetsService>(
      *scheduler_, *dataset_index_, *access_, *store_pool_, *control_pool_, *upload_pool_,
      upload_limits, refresh_disk_usage));
  return absl::OkStatus();
}

susceptibility::TapMeansFn SegserveServer::AnalysisForward(bool admit) {
  // Analyses run through the serving core at background priority: one executor owns the
  // device and Segment traffic goes first.
  return [this, admit](const std::shared_ptr<const registry::LoadedModel>& model, int n, int c,
                       int h, int w, std::vector<float> input) {
    inference::BackgroundBatch request;
    request.model = model;
    request.n = n;
    request.c = c;
    request.h = h;
    request.w = w;
    request.input = std::move(input);
    request.admit = admit;
    return inference::ForwardForTapMeans(*batch_scheduler_, std::move(request));
  };
}

void SegserveServer::BecomeReadyAsync() {
  control_pool_->TrySchedule([this] {
    if (options_.serve_role) {
      absl::Status loaded = registry_->LoadAtStartup(options_.load_models);
      if (!loaded.ok()) LOG(WARNING) << "some models did not load: " << loaded.message();
    } else {
      LOG(INFO) << "--roles=" << "train: no models loaded (serving replicas serve them)";
    }
    if (follower_) follower_->Start();
    ready_.store(true);
    server_->GetHealthCheckService()->SetServingStatus(true);
    LOG(INFO) << "ready: health SERVING";
  });
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> SegserveServer::Credentials() const {
  if (options_.tls_cert.empty()) return grpc::InsecureServerCredentials();
  ASSIGN_OR_RETURN(std::string cert, common::ReadFile(options_.tls_cert));
  ASSIGN_OR_RETURN(std::string key, common::ReadFile(options_.tls_key));
  grpc::SslServerCredentialsOptions ssl(
      options_.tls_client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                     : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_key_cert_pairs.push_back({key, cert});
  if (!options_.tls_client_ca.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, common::ReadFile(options_.tls_client_ca));
  }
  return grpc::SslServerCredentials(ssl);
}

absl::Status SegserveServer::Start() {
  for (const char* sub : {"", "/models", "/datasets", "/runs"}) {
    RETURN_IF_ERROR(common::MakeDirectories(options_.data_dir + sub));
  }
  // Deletes a crash interrupted were committed by their rename: finish them (the model
  // store cleans models/ itself).
  for (const char* sub : {"/datasets", "/runs"}) common::RemoveTombstones(options_.data_dir + sub);
  // Uploads the last process did not finish: the clients retry from the start. Replicas
  // sharing the folder (--database) keep one written to within the hour: it may be
  // another replica's upload in flight.
  data::DatasetUploads::RemoveStagingDirectories(
      options_.data_dir + "/datasets",
      options_.database.empty() ? std::chrono::seconds(0) : std::chrono::hours(1));
  RETURN_IF_ERROR(BuildComponents());

  ASSIGN_OR_RETURN(exposer_, metrics::HttpExposer::Start(options_.metrics_address));
  exposer_->RegisterCollectable(metrics_.registry());
  process_collector_ = std::make_shared<metrics::ProcessCollector>();
  exposer_->RegisterCollectable(process_collector_);
  metrics_port_ = exposer_->port();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, Credentials());
  builder.AddListeningPort(options_.listen_address, credentials, &grpc_port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(
      std::make_unique<api::RequestInterceptorFactory>(metrics_, &inflight_calls_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));

  for (auto& service : services_) builder.RegisterService(service.get());

  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("--listen ", options_.listen_address, ": cannot listen"));
  }
  // Not ready until every component is: probes see NOT_SERVING until then.
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus(false);
  LOG(INFO) << "segserve serving gRPC on port " << grpc_port_ << ", metrics on port "
            << metrics_port_ << ", data_dir " << options_.data_dir;
  if (!options_.port_file.empty()) {
    RETURN_IF_ERROR(WritePortFile(options_.port_file, grpc_port_, metrics_port_));
  }
  disk_usage_->Start();
  retention_->Start();
  BecomeReadyAsync();
  if (bootstrap_) bootstrap_->StartIfNeeded();
  return absl::OkStatus();
}

void SegserveServer::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    if (server_ == nullptr) return;
    LOG(INFO) << "shutting down: draining in-flight calls for up to " << options_.drain_seconds
              << " s";
    server_->GetHealthCheckService()->Shutdown();
    ready_.store(false);
    // Jobs first: running ones are interrupted and re-queued, watch streams end, so the
    // gRPC drain below is not held up by them.
    bootstrap_.reset();
    if (follower_) follower_->Stop();
    if (retention_) retention_->Stop();
    if (scheduler_) scheduler_->Shutdown();
    if (disk_usage_) disk_usage_->Stop();
    const auto deadline =
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int64_t>(options_.drain_seconds * 1000));
    // gRPC's graceful shutdown also waits for every client connection to close, idle ones
    // included (clients notice the GOAWAY only when they next look, seconds later), and
    // only closes them at the deadline. Once no call is in flight, nothing is left to
    // drain: close the connections at once.
    std::atomic<bool> drained{false};
    std::thread closer([this, deadline, &drained] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let Shutdown begin
      while (!drained.load() && std::chrono::system_clock::now() < deadline) {
        if (inflight_calls_.load() == 0) {
          grpc_server_cancel_all_calls(server_->c_server());
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    server_->Shutdown(deadline);
    drained.store(true);
    closer.join();
    server_->Wait();
    LOG(INFO) << "shutdown complete";
  });
}

SegserveServer::~SegserveServer() {
  Shutdown();
  // Work still queued fails fast (UNAVAILABLE) instead of running after the server is gone;
  // the pools drain before the components their tasks use are destroyed.
  // Running analysis jobs stop at their next batch while the executor still runs (they are
  // interrupted, not failed); then queued inference work is answered UNAVAILABLE.
  if (scheduler_) scheduler_->Shutdown();
  if (batch_scheduler_) batch_scheduler_->Shutdown();
  if (executor_) executor_->Join();
  store_pool_.reset();  // its queued job calls now fail fast: the scheduler is shut down
  upload_pool_.reset();
  analysis_pool_.reset();
  cpu_pool_.reset();
  control_pool_.reset();
}

}  // namespace segserve::app
