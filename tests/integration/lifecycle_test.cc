// Black-box lifecycle of the real segserve binary: start on port 0, health, an RPC of a
// later issue, /metrics over HTTP, segctl, and graceful SIGTERM.
#include <signal.h>

#include <set>
#include <thread>

#include "client/lib/client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection_probe.grpc.pb.h"
#include "gtest/gtest.h"
#include "segserve/v1/susceptibility.grpc.pb.h"
#include "client/lib/http_get.h"
#include "tests/testing/commands.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

using std::chrono::milliseconds;

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::ServerProcess::Start(testing::SegserveBinary(), dir_.path(),
                                                {"--drain_seconds=3"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ClientOptions options;
    options.target = server_->grpc_target();
    options.timeout = std::chrono::seconds(10);
    client_ = std::move(*client::Client::Create(options));
  }

  // Runs segctl with `args`; returns {exit code, stdout + stderr}.
  std::pair<int, std::string> Segctl(const std::string& args) {
    testing::CommandResult r = testing::RunCommand(testing::SegctlBinary() + " --server " +
                                                   server_->grpc_target() + " " + args);
    return {r.exit_code, r.output};
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::Client> client_;
};

TEST_F(LifecycleTest, HealthIsServingOnceStarted) {
  auto status = client_->Health();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, client::ServingStatus::kServing);
}

TEST_F(LifecycleTest, ReflectionListsEveryService) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(client_->channel());
  auto context = client_->NewContext();
  auto stream = stub->ServerReflectionInfo(context.get());
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("*");
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::set<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.insert(service.name());
  }
  for (const char* expected :
       {"segserve.v1.Segmentation", "segserve.v1.Susceptibility", "segserve.v1.Models",
        "segserve.v1.Training", "segserve.v1.Datasets", "grpc.health.v1.Health"}) {
    EXPECT_TRUE(names.count(expected)) << expected;
  }
  while (stream->Read(&response)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(LifecycleTest, AnalyzeWithoutModelsNamesTheField) {
  auto stub = v1::Susceptibility::NewStub(client_->channel());
  auto context = client_->NewContext();
  v1::SusceptibilityReport report;
  grpc::Status status = stub->Analyze(context.get(), v1::AnalyzeRequest(), &report);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("models"), std::string::npos);
}

TEST_F(LifecycleTest, MetricsScrapeShowsTheRequestCounterMove) {
  const std::string series =
      R"(segserve_grpc_requests_total{code="OK",method="/grpc.health.v1.Health/Check"})";
  auto before = client::HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_TRUE(before.ok()) << before.status();
  const double count_before = std::max(0.0, client::SampleValue(*before, series));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(client_->Health().ok());
  auto after = client::HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(client::SampleValue(*after, series), count_before + 4);
}

TEST_F(LifecycleTest, SegctlHealthPrintsServingAndExitsZero) {
  auto [code, output] = Segctl("health");
  EXPECT_EQ(code, 0) << output;
  EXPECT_EQ(output, "SERVING\n");
}

TEST_F(LifecycleTest, SegctlReportsUnreachableServerWithExitOne) {
  testing::CommandResult r =
      testing::RunCommand(testing::SegctlBinary() + " --server 127.0.0.1:1 --timeout 2 health");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("UNAVAILABLE"), std::string::npos) << r.output;
}

TEST_F(LifecycleTest, SegctlUsageErrorsExitTwo) {
  EXPECT_EQ(Segctl("no-such-command").first, 2);
  EXPECT_EQ(Segctl("health --bogus").first, 2);
}

// A CPU-only build asked for a GPU exits at once (no hang, no server without models) and
// says which LibTorch it has and how to get a CUDA build. CI's LibTorch is CPU-only; on a
// CUDA build with a GPU the server would start (timeout ends it) and the test skips.
TEST(LifecycleStartTest, CudaDeviceOnACpuBuildRefusesToStartNamingTheBuild) {
  testing::TempDir dir;
  testing::CommandResult r = testing::RunCommand(
      "timeout 60 " + testing::SegserveBinary() + " --auth_disabled --bootstrap=false" +
      " --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir=" + dir.path() +
      " --device=cuda:0");
  if (r.exit_code == 124) GTEST_SKIP() << "this segserve has CUDA and a GPU";
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--device=cuda:0: this segserve was built against LibTorch"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("without CUDA (CPU only)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("docker/Dockerfile.cuda"), std::string::npos) << r.output;
}

TEST_F(LifecycleTest, SigtermTurnsHealthNotServingDrainsAndExitsZero) {
  // An in-flight streaming call: health Watch stays open until the server drains it.
  auto stub = grpc::health::v1::Health::NewStub(client_->channel());
  grpc::ClientContext watch_context;
  grpc::health::v1::HealthCheckRequest request;
  auto reader = stub->Watch(&watch_context, request);
  grpc::health::v1::HealthCheckResponse update;
  ASSERT_TRUE(reader->Read(&update));
  EXPECT_EQ(update.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  const auto start = std::chrono::steady_clock::now();
  std::thread stopper([&] {
    auto code = server_->Stop(SIGTERM, milliseconds(3000 + 5000));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0);
  });
  ASSERT_TRUE(reader->Read(&update));
  EXPECT_EQ(update.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  while (reader->Read(&update)) {
  }
  reader->Finish();
  stopper.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 3.0 + 5.0);
}

// gRPC's graceful shutdown waits for idle client connections until the drain deadline;
// the server closes them as soon as no call is in flight, so a restart with idle clients
// does not take --drain_seconds.
TEST(LifecycleShutdownTest, IdleClientConnectionsDoNotHoldTheDrain) {
  testing::TempDir dir;
  auto server = testing::ServerProcess::Start(testing::SegserveBinary(), dir.path(),
                                              {"--drain_seconds=60"});
  ASSERT_TRUE(server.ok()) << server.status();
  client::ClientOptions options;
  options.target = (*server)->grpc_target();
  auto client = client::Client::Create(options);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->Health().ok());  // the connection stays open, idle
  auto code = (*server)->Stop(SIGTERM, std::chrono::seconds(20));
  ASSERT_TRUE(code.ok()) << code.status() << " (still draining after 20 s of 60)";
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace segserve
