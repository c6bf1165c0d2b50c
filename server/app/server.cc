#include "server/app/server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"
#include "prometheus/exposer.h"
#include "server/api/interceptor.h"
#include "server/api/unimplemented_services.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/metrics/process_collector.h"

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

absl::Status SegserveServer::Start() {
  for (const char* sub : {"", "/models", "/datasets", "/runs"}) {
    RETURN_IF_ERROR(common::MakeDirectories(options_.data_dir + sub));
  }

  try {
    exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_address, 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("--metrics_listen ", options_.metrics_address,
                                               ": cannot listen: ", e.what()));
  }
  exposer_->RegisterCollectable(metrics_.registry());
  process_collector_ = std::make_shared<metrics::ProcessCollector>();
  exposer_->RegisterCollectable(process_collector_);
  const std::vector<int> metrics_ports = exposer_->GetListeningPorts();
  metrics_port_ = metrics_ports.empty() ? 0 : metrics_ports.front();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen_address, grpc::InsecureServerCredentials(),
                           &grpc_port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<api::RequestInterceptorFactory>(metrics_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));

  services_.push_back(std::make_unique<api::UnimplementedSegmentation>());
  services_.push_back(std::make_unique<api::UnimplementedSusceptibility>());
  services_.push_back(std::make_unique<api::UnimplementedModels>());
  services_.push_back(std::make_unique<api::UnimplementedTraining>());
  services_.push_back(std::make_unique<api::UnimplementedDatasets>());
  for (auto& service : services_) builder.RegisterService(service.get());

  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("--listen ", options_.listen_address, ": cannot listen"));
  }
  // Not ready until every component is: probes see NOT_SERVING until then.
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus(false);

  health->SetServingStatus(true);
  LOG(INFO) << "segserve serving gRPC on port " << grpc_port_ << ", metrics on port "
            << metrics_port_ << ", data_dir " << options_.data_dir;
  if (!options_.port_file.empty()) {
    RETURN_IF_ERROR(WritePortFile(options_.port_file, grpc_port_, metrics_port_));
  }
  return absl::OkStatus();
}

void SegserveServer::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    if (server_ == nullptr) return;
    LOG(INFO) << "shutting down: draining in-flight calls for up to " << options_.drain_seconds
              << " s";
    server_->GetHealthCheckService()->Shutdown();
    const auto deadline =
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int64_t>(options_.drain_seconds * 1000));
    server_->Shutdown(deadline);
    server_->Wait();
    LOG(INFO) << "shutdown complete";
  });
}

SegserveServer::~SegserveServer() { Shutdown(); }

}  // namespace segserve::app
