// Black-box auth of the real segserve binary with a tokens file: every segserve.v1 method
// and every Open Inference Protocol method but ServerLive/ServerReady refuses callers
// without a token (UNAUTHENTICATED) and callers whose role is too low (PERMISSION_DENIED);
// health and the OIP liveness/readiness stay open; SIGHUP re-reads the file; each refusal is
// counted in /metrics; the per-client stream limit.
#include <signal.h>

#include <fstream>
#include <functional>
#include <thread>

#include "client/lib/client.h"
#include "client/lib/http_get.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "inference/open_inference.grpc.pb.h"
#include "segserve/v1/datasets.grpc.pb.h"
#include "segserve/v1/models.grpc.pb.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "segserve/v1/susceptibility.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"
#include "server/auth/token_file.h"
#include "tests/testing/commands.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

using auth::Role;

// One token per role; names are the role names.
constexpr Role kRoles[] = {Role::kViewer, Role::kSegmenter, Role::kTrainer, Role::kAdmin};
std::string TokenOf(Role role) { return std::string("secret-token-of-") + auth::RoleName(role); }

std::string TokensFile() {
  std::string contents = "# test tokens\n";
  for (Role role : kRoles) {
    contents += auth::TokenLine(auth::RoleName(role), role, TokenOf(role)) + "\n";
  }
  return contents;
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream(path, std::ios::trunc) << contents;
}

// A call of one method with an empty (or minimal) request, as `token` (empty: none).
using Call = std::function<grpc::Status(grpc::ClientContext*)>;

struct Method {
  std::string name;
  Role needed;
  Call call;
};

template <typename Request, typename Response, typename Stub, typename Fn>
Call Unary(std::shared_ptr<Stub> stub, Fn fn) {
  return [stub, fn](grpc::ClientContext* context) {
    Request request;
    Response response;
    return ((*stub).*fn)(context, request, &response);
  };
}

std::vector<Method> AllMethods(const std::shared_ptr<grpc::Channel>& channel) {
  auto models = std::shared_ptr<v1::Models::Stub>(v1::Models::NewStub(channel));
  auto datasets = std::shared_ptr<v1::Datasets::Stub>(v1::Datasets::NewStub(channel));
  auto segmentation = std::shared_ptr<v1::Segmentation::Stub>(v1::Segmentation::NewStub(channel));
  auto susceptibility =
      std::shared_ptr<v1::Susceptibility::Stub>(v1::Susceptibility::NewStub(channel));
  auto training = std::shared_ptr<v1::Training::Stub>(v1::Training::NewStub(channel));
  auto oip = std::shared_ptr<::inference::GRPCInferenceService::Stub>(
      ::inference::GRPCInferenceService::NewStub(channel));
  using M = v1::Models::Stub;
  using T = v1::Training::Stub;
  using O = ::inference::GRPCInferenceService::Stub;
  return {
      {"Models/List", Role::kViewer,
       Unary<v1::ListModelsRequest, v1::ListModelsResponse>(models, &M::List)},
      {"Models/Get", Role::kViewer, Unary<v1::GetModelRequest, v1::ModelInfo>(models, &M::Get)},
      {"Models/Load", Role::kAdmin, Unary<v1::LoadModelRequest, v1::ModelInfo>(models, &M::Load)},
      {"Models/Unload", Role::kAdmin,
       Unary<v1::UnloadModelRequest, v1::ModelInfo>(models, &M::Unload)},
      {"Models/Import", Role::kAdmin,
       Unary<v1::ImportModelRequest, v1::ModelInfo>(models, &M::Import)},
      {"Models/SetAlias", Role::kAdmin,
       Unary<v1::SetAliasRequest, v1::SetAliasResponse>(models, &M::SetAlias)},
      {"Models/ImportStream", Role::kAdmin,
       [models](grpc::ClientContext* context) {
         v1::ModelInfo info;
         auto stream = models->ImportStream(context, &info);
         stream->WritesDone();
         return stream->Finish();
       }},
      {"Models/Export", Role::kTrainer,
       [models](grpc::ClientContext* context) {
         v1::ExportModelRequest request;
         auto stream = models->Export(context, request);
         v1::ExportModelChunk chunk;
         while (stream->Read(&chunk)) {
         }
         return stream->Finish();
       }},
      {"Models/Delete", Role::kAdmin,
       Unary<v1::DeleteModelRequest, v1::DeleteModelResponse>(models, &M::Delete)},
      {"Datasets/List", Role::kViewer,
       Unary<v1::ListDatasetsRequest, v1::ListDatasetsResponse>(datasets,
                                                                &v1::Datasets::Stub::List)},
      {"Datasets/Generate", Role::kTrainer,
       Unary<v1::GenerateDatasetRequest, v1::Job>(datasets, &v1::Datasets::Stub::Generate)},
      {"Datasets/Delete", Role::kAdmin,
       Unary<v1::DeleteDatasetRequest, v1::DeleteDatasetResponse>(datasets,
                                                                  &v1::Datasets::Stub::Delete)},
      {"Datasets/Upload", Role::kAdmin,
       [datasets](grpc::ClientContext* context) {
         v1::DatasetInfo info;
         auto stream = datasets->Upload(context, &info);
         stream->WritesDone();
         return stream->Finish();
       }},
      {"Segmentation/Segment", Role::kSegmenter,
       Unary<v1::SegmentRequest, v1::SegmentResponse>(segmentation,
                                                      &v1::Segmentation::Stub::Segment)},
      {"Segmentation/SegmentStream", Role::kSegmenter,
       [segmentation](grpc::ClientContext* context) {
         auto stream = segmentation->SegmentStream(context);
         stream->WritesDone();
         v1::SegmentResponse response;
         while (stream->Read(&response)) {
         }
         return stream->Finish();
       }},
      {"Susceptibility/Analyze", Role::kSegmenter,
       Unary<v1::AnalyzeRequest, v1::SusceptibilityReport>(susceptibility,
                                                           &v1::Susceptibility::Stub::Analyze)},
      {"Susceptibility/SubmitAnalysis", Role::kSegmenter,
       Unary<v1::AnalyzeRequest, v1::AnalysisJob>(susceptibility,
                                                  &v1::Susceptibility::Stub::SubmitAnalysis)},
      {"Training/SubmitTrain", Role::kTrainer,
       Unary<v1::TrainSpec, v1::Job>(training, &T::SubmitTrain)},
      {"Training/GetJob", Role::kViewer, Unary<v1::JobRef, v1::Job>(training, &T::GetJob)},
      {"Training/ListJobs", Role::kViewer,
       Unary<v1::ListJobsRequest, v1::ListJobsResponse>(training, &T::ListJobs)},
      {"Training/CancelJob", Role::kTrainer, Unary<v1::JobRef, v1::Job>(training, &T::CancelJob)},
      {"Training/PurgeJobs", Role::kAdmin,
       Unary<v1::PurgeJobsRequest, v1::PurgeJobsResponse>(training, &T::PurgeJobs)},
      {"Training/WatchJob", Role::kViewer,
       [training](grpc::ClientContext* context) {
         v1::JobRef request;
         auto stream = training->WatchJob(context, request);
         v1::JobEvent event;
         while (stream->Read(&event)) {
         }
         return stream->Finish();
       }},
      {"inference/ServerMetadata", Role::kViewer,
       Unary<::inference::ServerMetadataRequest, ::inference::ServerMetadataResponse>(
           oip, &O::ServerMetadata)},
      {"inference/ModelReady", Role::kViewer,
       Unary<::inference::ModelReadyRequest, ::inference::ModelReadyResponse>(oip,
                                                                              &O::ModelReady)},
      {"inference/ModelMetadata", Role::kViewer,
       Unary<::inference::ModelMetadataRequest, ::inference::ModelMetadataResponse>(
           oip, &O::ModelMetadata)},
      {"inference/RepositoryIndex", Role::kViewer,
       Unary<::inference::RepositoryIndexRequest, ::inference::RepositoryIndexResponse>(
           oip, &O::RepositoryIndex)},
      {"inference/ModelConfig", Role::kViewer,
       Unary<::inference::ModelConfigRequest, ::inference::ModelConfigResponse>(oip,
                                                                                &O::ModelConfig)},
      {"inference/ModelInfer", Role::kSegmenter,
       Unary<::inference::ModelInferRequest, ::inference::ModelInferResponse>(oip,
                                                                              &O::ModelInfer)},
  };
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteFile(tokens_path_, TokensFile()); }

  void Start(std::vector<std::string> flags = {}) {
    flags.push_back("--auth_tokens_file=" + tokens_path_);
    auto server = testing::ServerProcess::Start(testing::SegserveBinary(), dir_.path(), flags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(server_->grpc_target(), grpc::InsecureChannelCredentials());
  }

  grpc::Status CallAs(const Method& method, const std::string& authorization) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!authorization.empty()) context.AddMetadata("authorization", authorization);
    return method.call(&context);
  }

  double Metric(const std::string& series) { return server_->Metric(series); }

  testing::TempDir dir_;
  const std::string tokens_path_ = dir_.path() + "/tokens";
  std::unique_ptr<testing::ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(AuthTest, ServerRefusesToStartWithoutAnAuthChoice) {
  testing::CommandResult r = testing::RunCommand(
      testing::SegserveBinary() + " --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 " +
      "--bootstrap=false --data_dir=" + dir_.path() + "/var");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--auth_tokens_file"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--auth_disabled"), std::string::npos) << r.output;
}

TEST_F(AuthTest, EveryMethodRefusesCallersWithoutAValidToken) {
  Start();
  const auto methods = AllMethods(channel_);
  for (const Method& method : methods) {
    for (const std::string& header :
         {std::string(), std::string("Bearer not-a-token"), std::string("Basic abc")}) {
      grpc::Status status = CallAs(method, header);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << method.name << " with '" << header << "': " << status.error_message();
    }
  }
  const double n = static_cast<double>(methods.size());
  EXPECT_EQ(Metric("segserve_auth_failures_total{reason=\"missing_token\"}"), n);
  EXPECT_EQ(Metric("segserve_auth_failures_total{reason=\"invalid_token\"}"), n);
  EXPECT_EQ(Metric("segserve_auth_failures_total{reason=\"malformed_header\"}"), n);
}

TEST_F(AuthTest, HealthStaysOpenForProbes) {
  Start();
  client::ClientOptions options;
  options.target = server_->grpc_target();
  auto client = client::Client::Create(options);
  ASSERT_TRUE(client.ok());
  auto health = (*client)->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, client::ServingStatus::kServing);
  // The OIP's probes, which KServe and Triton clients call before anything else.
  auto oip = ::inference::GRPCInferenceService::NewStub(channel_);
  grpc::ClientContext live_context;
  ::inference::ServerLiveResponse live;
  EXPECT_TRUE(oip->ServerLive(&live_context, {}, &live).ok());
  EXPECT_TRUE(live.live());
  grpc::ClientContext ready_context;
  ::inference::ServerReadyResponse ready;
  EXPECT_TRUE(oip->ServerReady(&ready_context, {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
}

TEST_F(AuthTest, EachRoleReachesExactlyItsMethods) {
  Start();
  int denied = 0;
  for (const Method& method : AllMethods(channel_)) {
    for (Role role : kRoles) {
      grpc::Status status = CallAs(method, "Bearer " + TokenOf(role));
      if (auth::Permits(role, method.needed)) {
        // Past auth: the empty request itself is what the method answers (OK or a field
        // error), never an auth code.
        EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method.name;
        EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << method.name << " as " << auth::RoleName(role) << ": " << status.error_message();
      } else {
        ++denied;
        EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << method.name << " as " << auth::RoleName(role);
        EXPECT_NE(status.error_message().find(auth::RoleName(method.needed)), std::string::npos)
            << status.error_message();
      }
    }
  }
  EXPECT_EQ(Metric("segserve_auth_failures_total{reason=\"permission_denied\"}"), denied);
  EXPECT_GT(Metric("segserve_auth_allowed_total{role=\"admin\"}"), 0);
}

TEST_F(AuthTest, SighupReloadsTokensAndABadFileKeepsTheOldOnes) {
  Start();
  const Method list = AllMethods(channel_).front();
  ASSERT_EQ(list.name, "Models/List");
  const std::string fresh = "Bearer a-token-added-later";
  EXPECT_EQ(CallAs(list, fresh).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  WriteFile(tokens_path_,
            TokensFile() + auth::TokenLine("later", Role::kViewer, "a-token-added-later") + "\n");
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  // The reload happens on the signal thread: poll (bounded) for the new token to work.
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  for (int i = 0; i < 200 && code != grpc::StatusCode::OK; ++i) {
    code = CallAs(list, fresh).error_code();
    if (code != grpc::StatusCode::OK) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(code, grpc::StatusCode::OK);
  EXPECT_EQ(Metric("segserve_auth_reloads_total{result=\"ok\"}"), 1);
  EXPECT_EQ(Metric("segserve_auth_tokens"), 5);

  WriteFile(tokens_path_, "viewer nonsense-role sha256:abc\n");
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  double errors = 0;
  for (int i = 0; i < 200 && errors == 0; ++i) {
    errors = Metric("segserve_auth_reloads_total{result=\"error\"}");
    if (errors == 0) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(errors, 1);
  EXPECT_EQ(CallAs(list, fresh).error_code(), grpc::StatusCode::OK);
  EXPECT_EQ(CallAs(list, "Bearer " + TokenOf(Role::kViewer)).error_code(), grpc::StatusCode::OK);
}

// Regression: a SIGHUP that arrived while the main thread was still reloading went to a
// thread a library started before main, where the default action killed the server.
TEST_F(AuthTest, ABurstOfSighupsNeverKillsTheServer) {
  Start();
  const Method list = AllMethods(channel_).front();
  // Spread out, so that many arrive while the main thread is busy with the previous one.
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(kill(server_->pid(), SIGHUP), 0) << "after " << i << " signals";
    std::this_thread::sleep_for(std::chrono::microseconds(100 + 50 * (i % 7)));
  }
  // Each reload is counted; wait (bounded) until the burst has been handled.
  double reloads = 0;
  for (int i = 0; i < 200 && reloads < 1; ++i) {
    reloads = Metric("segserve_auth_reloads_total{result=\"ok\"}");
    if (reloads < 1) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_GE(reloads, 1);
  EXPECT_EQ(CallAs(list, "Bearer " + TokenOf(Role::kViewer)).error_code(), grpc::StatusCode::OK);
  auto code = server_->Stop(SIGTERM, std::chrono::seconds(20));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

TEST_F(AuthTest, StreamsPerClientAreLimited) {
  Start({"--max_streams_per_client=2"});
  auto stub = v1::Segmentation::NewStub(channel_);
  using Stream = grpc::ClientReaderWriter<v1::SegmentRequest, v1::SegmentResponse>;
  struct Open {
    std::unique_ptr<grpc::ClientContext> context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<Stream> stream;
  };
  auto open = [&](Role role) {
    Open o;
    o.context->AddMetadata("authorization", "Bearer " + TokenOf(role));
    o.stream = stub->SegmentStream(o.context.get());
    return o;
  };
  auto finish = [](Open& o) {
    o.stream->WritesDone();
    v1::SegmentResponse response;
    while (o.stream->Read(&response)) {
    }
    return o.stream->Finish();
  };
  // Two open streams of the segmenter; the server has counted them once the reactors ran.
  Open first = open(Role::kSegmenter);
  Open second = open(Role::kSegmenter);
  for (int i = 0; i < 200 && Metric("segserve_open_streams") < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_EQ(Metric("segserve_open_streams"), 2);
  Open third = open(Role::kSegmenter);
  grpc::Status refused = finish(third);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("max_streams_per_client=2"), std::string::npos)
      << refused.error_message();
  EXPECT_EQ(Metric("segserve_stream_limit_rejections_total"), 1);
  // Another client is not affected.
  Open other = open(Role::kAdmin);
  EXPECT_TRUE(finish(other).ok());
  // Closing a stream frees its slot.
  EXPECT_TRUE(finish(first).ok());
  for (int i = 0; i < 200 && Metric("segserve_open_streams") > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  Open again = open(Role::kSegmenter);
  EXPECT_TRUE(finish(again).ok());
  EXPECT_TRUE(finish(second).ok());
}

TEST_F(AuthTest, SegctlSendsTheTokenFromAFile) {
  Start();
  const std::string token_file = dir_.path() + "/viewer.token";
  WriteFile(token_file, TokenOf(Role::kViewer) + "\n");
  auto run = [&](const std::string& args) {
    testing::CommandResult r = testing::RunCommand(testing::SegctlBinary() + " --server " +
                                                   server_->grpc_target() + " " + args);
    return std::make_pair(r.exit_code, r.output);
  };
  auto [code, output] = run("--token-file " + token_file + " models list");
  EXPECT_EQ(code, 0) << output;
  std::tie(code, output) = run("models list");
  EXPECT_EQ(code, 1) << output;
  EXPECT_NE(output.find("UNAUTHENTICATED"), std::string::npos) << output;
  std::tie(code, output) = run("--token-file " + token_file + " models unload x");
  EXPECT_EQ(code, 1) << output;
  EXPECT_NE(output.find("PERMISSION_DENIED"), std::string::npos) << output;
}

}  // namespace
}  // namespace segserve
