// The interceptor on a real in-process server over loopback (port 0).
#include "server/api/interceptor.h"

#include <unistd.h>

#include "client/lib/client.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "segserve/v1/models.grpc.pb.h"
#include "server/app/server.h"
#include "client/lib/http_get.h"
#include "tests/testing/server_process.h"

namespace segserve::api {
namespace {

class InterceptorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    app::ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.metrics_address = "127.0.0.1:0";
    options.data_dir = dir_.path();
    options.drain_seconds = 1;
    options.bootstrap = false;
    options.auth_disabled = true;
    auto server = app::SegserveServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ClientOptions client_options;
    client_options.target = "127.0.0.1:" + std::to_string(server_->grpc_port());
    client_ = std::move(*client::Client::Create(client_options));
  }

  std::string Exposition() {
    prometheus::TextSerializer serializer;
    return serializer.Serialize(server_->metrics().registry()->Collect());
  }

  testing::TempDir dir_;
  std::unique_ptr<app::SegserveServer> server_;
  std::unique_ptr<client::Client> client_;
};

TEST_F(InterceptorTest, CountsEveryCallByMethodAndCode) {
  auto stub = v1::Models::NewStub(client_->channel());
  for (int i = 0; i < 3; ++i) {
    v1::ListModelsResponse response;
    auto context = client_->NewContext();
    grpc::Status status = stub->List(context.get(), v1::ListModelsRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_TRUE(client_->Health().ok());
  const std::string text = Exposition();
  EXPECT_EQ(client::SampleValue(
                text, R"(segserve_grpc_requests_total{code="OK",method="/segserve.v1.Models/List"})"),
            3);
  EXPECT_EQ(client::SampleValue(
                text, R"(segserve_grpc_requests_total{code="OK",method="/grpc.health.v1.Health/Check"})"),
            1);
  EXPECT_EQ(client::SampleValue(
                text, R"(segserve_grpc_request_duration_seconds_count{method="/segserve.v1.Models/List"})"),
            3);
}

TEST_F(InterceptorTest, CountsErrorsUnderTheirCode) {
  auto stub = v1::Models::NewStub(client_->channel());
  auto context = client_->NewContext();
  v1::GetModelRequest request;
  request.mutable_model()->set_name("missing");
  v1::ModelInfo info;
  EXPECT_EQ(stub->Get(context.get(), request, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(client::SampleValue(
                Exposition(), R"(segserve_grpc_requests_total{code="NOT_FOUND",method="/segserve.v1.Models/Get"})"),
            1);
}

TEST_F(InterceptorTest, EchoesTheClientRequestId) {
  auto stub = v1::Models::NewStub(client_->channel());
  auto context = client_->NewContext();
  context->AddMetadata("x-request-id", "pipeline-42");
  v1::ListModelsResponse response;
  stub->List(context.get(), v1::ListModelsRequest(), &response);
  const auto& headers = context->GetServerInitialMetadata();
  auto it = headers.find("x-request-id");
  ASSERT_NE(it, headers.end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "pipeline-42");
}

TEST_F(InterceptorTest, AssignsARequestIdWhenTheClientSendsNone) {
  auto stub = v1::Models::NewStub(client_->channel());
  auto context = client_->NewContext();
  v1::ListModelsResponse response;
  stub->List(context.get(), v1::ListModelsRequest(), &response);
  const auto& headers = context->GetServerInitialMetadata();
  auto it = headers.find("x-request-id");
  ASSERT_NE(it, headers.end());
  EXPECT_EQ(it->second.size(), 16u);
}

TEST_F(InterceptorTest, ExportsBuildAndProcessMetricsOverHttp) {
  auto body = client::HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_NE(body->find("segserve_build_info{"), std::string::npos);
  EXPECT_GT(client::SampleValue(*body, "process_resident_memory_bytes"), 0);
  EXPECT_GT(client::SampleValue(*body, "process_start_time_seconds"), 1.6e9);
}

}  // namespace
}  // namespace segserve::api
