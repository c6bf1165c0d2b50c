// The Open Inference Protocol (inference.GRPCInferenceService) of the real segserve binary
// over loopback: every RPC, raw and typed inputs, batches, errors that name the tensor,
// masks equal to segserve.v1 Segment's on the same images, and a Python client written
// from the OIP proto alone (tests/integration/oip_client_test.py).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "client/lib/client.h"
#include "gtest/gtest.h"
#include "inference/open_inference.grpc.pb.h"
#include "segserve/v1/models.grpc.pb.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "server/data/image.h"
#include "test_paths.h"
#include "tests/testing/commands.h"
#include "tests/testing/model_fixture.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

namespace oip = ::inference;

data::Image NoiseImage(int height, int width, int channels, uint64_t seed) {
  data::Image image = data::Image::Create(height, width, channels);
  std::mt19937_64 rng(seed);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        const double v = 128 + 90 * std::sin(x * 0.05 + c + seed) * std::cos(y * 0.07 - c) +
                         static_cast<double>(rng() % 40) - 20;
        image.bytes[(static_cast<size_t>(y) * width + x) * channels + c] =
            static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
      }
    }
  }
  return image;
}

// An `image` input of the given images (same size), datatype UINT8, contents raw.
oip::ModelInferRequest RawInfer(const std::string& model, const std::vector<data::Image>& images) {
  oip::ModelInferRequest request;
  request.set_model_name(model);
  auto* input = request.add_inputs();
  input->set_name("image");
  input->set_datatype("UINT8");
  for (int64_t d :
       {static_cast<int64_t>(images.size()), static_cast<int64_t>(images[0].height),
        static_cast<int64_t>(images[0].width), static_cast<int64_t>(images[0].channels)}) {
    input->add_shape(d);
  }
  std::string* raw = request.add_raw_input_contents();
  for (const auto& image : images) raw->append(image.bytes.begin(), image.bytes.end());
  return request;
}

// The same request with typed contents instead: uint_contents, or fp32_contents on [0, 1]
// (scaled exactly as the server scales UINT8, so both give the same model input).
oip::ModelInferRequest TypedInfer(const std::string& model, const std::vector<data::Image>& images,
                                  bool fp32) {
  oip::ModelInferRequest request = RawInfer(model, images);
  request.clear_raw_input_contents();
  auto* input = request.mutable_inputs(0);
  input->set_datatype(fp32 ? "FP32" : "UINT8");
  for (const auto& image : images) {
    for (uint8_t b : image.bytes) {
      if (fp32) {
        input->mutable_contents()->add_fp32_contents(b * (1.0f / 255.0f));
      } else {
        input->mutable_contents()->add_uint_contents(b);
      }
    }
  }
  return request;
}

class OipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model::UnetConfig config;
    config.encoder = model::EncoderKind::kResNet18;
    config.skip_prune_level = 1;
    config.classes = 3;
    ASSERT_TRUE(testing::AddTestModel(dir_.path(), "plasmo-l1", config, 7).ok());
    auto server = testing::ServerProcess::Start(testing::SegserveBinary(), dir_.path(),
                                                {"--aliases=l1-pruned=plasmo-l1"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ClientOptions options;
    options.target = server_->grpc_target();
    options.timeout = std::chrono::seconds(120);
    client_ = std::move(*client::Client::Create(options));
    stub_ = oip::GRPCInferenceService::NewStub(client_->channel());
    segmentation_ = v1::Segmentation::NewStub(client_->channel());
    // ServerReady is the OIP form of health SERVING: wait for it (bounded).
    bool ready = false;
    for (int i = 0; i < 600 && !ready; ++i) {
      oip::ServerReadyResponse response;
      auto context = client_->NewContext();
      ready = stub_->ServerReady(context.get(), {}, &response).ok() && response.ready();
      if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(ready);
  }

  grpc::Status Infer(const oip::ModelInferRequest& request, oip::ModelInferResponse* response) {
    auto context = client_->NewContext();
    return stub_->ModelInfer(context.get(), request, response);
  }

  // segserve.v1 Segment's raw mask and probabilities of `image`.
  std::pair<std::string, std::vector<float>> Segment(const data::Image& image) {
    v1::SegmentRequest request;
    request.mutable_model()->set_name("plasmo-l1");
    auto* raw = request.mutable_image()->mutable_raw();
    raw->set_height(image.height);
    raw->set_width(image.width);
    raw->set_channels(image.channels);
    raw->set_dtype(v1::DTYPE_UINT8);
    raw->set_data(std::string(image.bytes.begin(), image.bytes.end()));
    request.mutable_options()->set_mask_encoding(v1::MASK_RAW);
    request.mutable_options()->set_return_probabilities(true);
    v1::SegmentResponse response;
    auto context = client_->NewContext();
    grpc::Status status = segmentation_->Segment(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.mask(), Floats(response.probabilities().data())};
  }

  static std::vector<float> Floats(const std::string& bytes) {
    std::vector<float> values(bytes.size() / sizeof(float));
    std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
    return values;
  }

  // Equal within `tolerance` (a batch of N may be computed in a different order than N
  // single forward passes), and not constant (so the comparison means something).
  static void ExpectNear(const std::vector<float>& a, const std::vector<float>& b,
                         float tolerance) {
    ASSERT_EQ(a.size(), b.size());
    float worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    EXPECT_LE(worst, tolerance);
    const auto [lo, hi] = std::minmax_element(a.begin(), a.end());
    EXPECT_GT(*hi - *lo, 1e-3f);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<oip::GRPCInferenceService::Stub> stub_;
  std::unique_ptr<v1::Segmentation::Stub> segmentation_;
};

TEST_F(OipTest, ServerLiveReadyAndMetadata) {
  auto context = client_->NewContext();
  oip::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(context.get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  context = client_->NewContext();
  oip::ServerMetadataResponse metadata;
  ASSERT_TRUE(stub_->ServerMetadata(context.get(), {}, &metadata).ok());
  EXPECT_EQ(metadata.name(), "segserve");
  EXPECT_FALSE(metadata.version().empty());
}

TEST_F(OipTest, ModelReadyByNameAliasAndVersion) {
  auto ready = [&](const std::string& name, const std::string& version,
                   oip::ModelReadyResponse* response) {
    oip::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    auto context = client_->NewContext();
    return stub_->ModelReady(context.get(), request, response);
  };
  for (const auto& [name, version] : std::vector<std::pair<std::string, std::string>>{
           {"plasmo-l1", ""}, {"l1-pruned", ""}, {"plasmo-l1", "1"}}) {
    oip::ModelReadyResponse response;
    grpc::Status status = ready(name, version, &response);
    ASSERT_TRUE(status.ok()) << name << ": " << status.error_message();
    EXPECT_TRUE(response.ready()) << name << " version '" << version << "'";
  }
  oip::ModelReadyResponse response;
  EXPECT_EQ(ready("no-such-model", "", &response).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::Status bad = ready("plasmo-l1", "latest", &response);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("version"), std::string::npos) << bad.error_message();
}

TEST_F(OipTest, ModelMetadataDescribesTheTensors) {
  oip::ModelMetadataRequest request;
  request.set_name("l1-pruned");
  oip::ModelMetadataResponse metadata;
  auto context = client_->NewContext();
  ASSERT_TRUE(stub_->ModelMetadata(context.get(), request, &metadata).ok());
  EXPECT_EQ(metadata.name(), "l1-pruned");
  ASSERT_EQ(metadata.versions_size(), 1);
  EXPECT_EQ(metadata.versions(0), "1");
  ASSERT_EQ(metadata.inputs_size(), 1);
  const auto& input = metadata.inputs(0);
  EXPECT_EQ(input.name(), "image");
  EXPECT_EQ(input.datatype(), "UINT8");
  EXPECT_EQ(std::vector<int64_t>(input.shape().begin(), input.shape().end()),
            (std::vector<int64_t>{-1, -1, -1, 3}));
  EXPECT_EQ(input.parameters().at("datatypes").string_param(), "UINT8,FP32");
  EXPECT_EQ(input.parameters().at("layout").string_param(), "NHWC");
  EXPECT_EQ(input.parameters().at("mean").string_param(), "0.485,0.456,0.406");
  EXPECT_EQ(input.parameters().at("std").string_param(), "0.229,0.224,0.225");
  ASSERT_EQ(metadata.outputs_size(), 2);
  EXPECT_EQ(metadata.outputs(0).name(), "mask");
  EXPECT_EQ(metadata.outputs(0).datatype(), "UINT8");
  EXPECT_EQ(metadata.outputs(0).shape_size(), 3);
  EXPECT_EQ(metadata.outputs(1).name(), "probabilities");
  EXPECT_EQ(metadata.outputs(1).datatype(), "FP32");
  EXPECT_EQ(
      std::vector<int64_t>(metadata.outputs(1).shape().begin(), metadata.outputs(1).shape().end()),
      (std::vector<int64_t>{-1, 3, -1, -1}));
}

TEST_F(OipTest, RepositoryIndexListsTheStoredVersions) {
  for (bool ready_only : {true, false}) {
    oip::RepositoryIndexRequest request;
    request.set_ready(ready_only);
    oip::RepositoryIndexResponse index;
    auto context = client_->NewContext();
    ASSERT_TRUE(stub_->RepositoryIndex(context.get(), request, &index).ok());
    // The version under its name, then under the alias that reaches it.
    ASSERT_EQ(index.models_size(), 2) << index.DebugString();
    EXPECT_EQ(index.models(0).name(), "plasmo-l1");
    EXPECT_EQ(index.models(1).name(), "l1-pruned");
    for (const auto& entry : index.models()) {
      EXPECT_EQ(entry.version(), "1");
      EXPECT_EQ(entry.state(), "READY");
      EXPECT_EQ(entry.reason(), "");
    }
  }
}

TEST_F(OipTest, RepositoryIndexMarksUnloadedVersionsUnavailable) {
  v1::UnloadModelRequest unload;
  unload.mutable_model()->set_name("plasmo-l1");
  unload.mutable_model()->set_version(1);
  v1::ModelInfo info;
  auto unload_context = client_->NewContext();
  grpc::Status unloaded =
      v1::Models::NewStub(client_->channel())->Unload(unload_context.get(), unload, &info);
  ASSERT_TRUE(unloaded.ok()) << unloaded.error_message();
  oip::RepositoryIndexResponse all;
  auto context = client_->NewContext();
  ASSERT_TRUE(stub_->RepositoryIndex(context.get(), {}, &all).ok());
  ASSERT_EQ(all.models_size(), 2) << all.DebugString();
  for (const auto& entry : all.models()) {
    EXPECT_EQ(entry.state(), "UNAVAILABLE");
    EXPECT_EQ(entry.reason(), "not loaded");
  }
  oip::RepositoryIndexRequest ready_only;
  ready_only.set_ready(true);
  oip::RepositoryIndexResponse ready;
  auto ready_context = client_->NewContext();
  ASSERT_TRUE(stub_->RepositoryIndex(ready_context.get(), ready_only, &ready).ok());
  EXPECT_EQ(ready.models_size(), 0) << ready.DebugString();
  // A stored version that is not loaded still has a configuration.
  oip::ModelConfigRequest config_request;
  config_request.set_name("plasmo-l1");
  oip::ModelConfigResponse config;
  auto config_context = client_->NewContext();
  EXPECT_TRUE(stub_->ModelConfig(config_context.get(), config_request, &config).ok());
}

TEST_F(OipTest, ModelConfigIsWhatTritonToolsRead) {
  const std::string ok_metric =
      R"(segserve_grpc_requests_total{code="OK",method="/inference.GRPCInferenceService/ModelConfig"})";
  const double ok_before = std::max(0.0, server_->Metric(ok_metric));
  for (const auto& [name, version] : std::vector<std::pair<std::string, std::string>>{
           {"l1-pruned", ""}, {"plasmo-l1", "1"}}) {
    oip::ModelConfigRequest request;
    request.set_name(name);
    request.set_version(version);
    oip::ModelConfigResponse response;
    grpc::ClientContext context;
    context.AddMetadata("x-request-id", "config-" + name);
    grpc::Status status = stub_->ModelConfig(&context, request, &response);
    ASSERT_TRUE(status.ok()) << name << ": " << status.error_message();
    auto id = context.GetServerInitialMetadata().find("x-request-id");
    ASSERT_NE(id, context.GetServerInitialMetadata().end());
    EXPECT_EQ(std::string(id->second.data(), id->second.size()), "config-" + name);
    const oip::ModelConfig& config = response.config();
    EXPECT_EQ(config.name(), name);
    EXPECT_EQ(config.platform(), "segserve_unet");
    EXPECT_EQ(config.backend(), "segserve");
    EXPECT_EQ(config.max_batch_size(), 64);
    ASSERT_EQ(config.input_size(), 1);
    EXPECT_EQ(config.input(0).name(), "image");
    EXPECT_EQ(config.input(0).data_type(), oip::TYPE_UINT8);
    EXPECT_EQ(config.input(0).format(), oip::ModelInput::FORMAT_NHWC);
    EXPECT_EQ(std::vector<int64_t>(config.input(0).dims().begin(), config.input(0).dims().end()),
              (std::vector<int64_t>{-1, -1, 3}));
    ASSERT_EQ(config.output_size(), 2);
    EXPECT_EQ(config.output(0).name(), "mask");
    EXPECT_EQ(config.output(0).data_type(), oip::TYPE_UINT8);
    EXPECT_EQ(std::vector<int64_t>(config.output(0).dims().begin(), config.output(0).dims().end()),
              (std::vector<int64_t>{-1, -1}));
    EXPECT_EQ(config.output(1).name(), "probabilities");
    EXPECT_EQ(config.output(1).data_type(), oip::TYPE_FP32);
    EXPECT_EQ(std::vector<int64_t>(config.output(1).dims().begin(), config.output(1).dims().end()),
              (std::vector<int64_t>{3, -1, -1}));
    ASSERT_TRUE(config.has_dynamic_batching());
    // ServerProcess's flags, else the defaults (--max_batch_size=8, --max_queue_delay_ms=2).
    EXPECT_EQ(config.dynamic_batching().preferred_batch_size_size(), 1);
    EXPECT_GT(config.dynamic_batching().preferred_batch_size(0), 0);
    EXPECT_EQ(config.parameters().at("mean").string_value(), "0.485,0.456,0.406");
    EXPECT_EQ(config.parameters().at("std").string_value(), "0.229,0.224,0.225");
    EXPECT_EQ(config.parameters().at("datatypes").string_value(), "UINT8,FP32");
  }
  EXPECT_EQ(server_->Metric(ok_metric) - ok_before, 2);

  oip::ModelConfigResponse response;
  oip::ModelConfigRequest unknown;
  unknown.set_name("no-such-model");
  auto context = client_->NewContext();
  grpc::Status missing = stub_->ModelConfig(context.get(), unknown, &response);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(missing.error_message().find("no-such-model"), std::string::npos)
      << missing.error_message();
  oip::ModelConfigRequest bad_version;
  bad_version.set_name("plasmo-l1");
  bad_version.set_version("latest");
  auto bad_context = client_->NewContext();
  grpc::Status bad = stub_->ModelConfig(bad_context.get(), bad_version, &response);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("version"), std::string::npos) << bad.error_message();
  oip::ModelConfigRequest unstored;
  unstored.set_name("plasmo-l1");
  unstored.set_version("9");
  auto unstored_context = client_->NewContext();
  EXPECT_EQ(stub_->ModelConfig(unstored_context.get(), unstored, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(OipTest, RawBatchOfTwoGivesSegmentsMasks) {
  constexpr int kH = 96, kW = 128;
  const std::vector<data::Image> images = {NoiseImage(kH, kW, 3, 1), NoiseImage(kH, kW, 3, 2)};
  const std::string images_metric = R"(segserve_images_total{model="plasmo-l1"})";
  const double images_before = std::max(0.0, server_->Metric(images_metric));
  oip::ModelInferRequest request = RawInfer("l1-pruned", images);
  request.set_id("batch-of-two");
  request.add_outputs()->set_name("mask");
  request.add_outputs()->set_name("probabilities");
  oip::ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.id(), "batch-of-two");
  EXPECT_EQ(response.model_name(), "plasmo-l1");
  EXPECT_EQ(response.model_version(), "1");
  ASSERT_TRUE(response.parameters().count("precision"));
  EXPECT_EQ(response.parameters().at("precision").string_param(), "fp32");
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "mask");
  EXPECT_EQ(response.outputs(0).datatype(), "UINT8");
  EXPECT_EQ(
      std::vector<int64_t>(response.outputs(0).shape().begin(), response.outputs(0).shape().end()),
      (std::vector<int64_t>{2, kH, kW}));
  EXPECT_FALSE(response.outputs(0).has_contents());
  ASSERT_EQ(response.raw_output_contents_size(), 2);
  const std::string& masks = response.raw_output_contents(0);
  ASSERT_EQ(masks.size(), 2u * kH * kW);
  const std::vector<float> probabilities = Floats(response.raw_output_contents(1));
  const size_t plane = 3u * kH * kW;
  ASSERT_EQ(probabilities.size(), 2 * plane);
  for (size_t i = 0; i < images.size(); ++i) {
    const auto [mask, reference] = Segment(images[i]);
    // (EXPECT_TRUE: a failure must not print two 12 KB strings.)
    EXPECT_TRUE(masks.substr(i * kH * kW, kH * kW) == mask) << "image " << i;
    ExpectNear(std::vector<float>(probabilities.begin() + i * plane,
                                  probabilities.begin() + (i + 1) * plane),
               reference, 1e-4f);
  }
  // Both images went through the engine that Segment uses (then Segment's two).
  EXPECT_EQ(server_->Metric(images_metric), images_before + 4);
  EXPECT_EQ(
      server_->Metric(
          R"(segserve_grpc_requests_total{code="OK",method="/inference.GRPCInferenceService/ModelInfer"})"),
      1);
}

TEST_F(OipTest, TypedUint8AndFp32GiveTheRawMasks) {
  const std::vector<data::Image> images = {NoiseImage(96, 128, 3, 3)};
  auto infer = [&](oip::ModelInferRequest request) {
    request.add_outputs()->set_name("mask");
    request.add_outputs()->set_name("probabilities");
    oip::ModelInferResponse response;
    grpc::Status status = Infer(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  };
  const oip::ModelInferResponse raw = infer(RawInfer("plasmo-l1", images));
  ASSERT_EQ(raw.raw_output_contents_size(), 2);
  // FP32 as raw bytes too.
  oip::ModelInferRequest f32 = TypedInfer("plasmo-l1", images, true);
  const auto& values = f32.inputs(0).contents().fp32_contents();
  f32.add_raw_input_contents(
      std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  f32.mutable_inputs(0)->clear_contents();
  const auto [mask, reference] = Segment(images[0]);
  EXPECT_TRUE(raw.raw_output_contents(0) == mask);
  ExpectNear(Floats(raw.raw_output_contents(1)), reference, 1e-5f);
  for (const auto& [what, request] : std::vector<std::pair<std::string, oip::ModelInferRequest>>{
           {"typed UINT8", TypedInfer("plasmo-l1", images, false)},
           {"typed FP32", TypedInfer("plasmo-l1", images, true)},
           {"raw FP32", f32}}) {
    const oip::ModelInferResponse other = infer(request);
    ASSERT_EQ(other.raw_output_contents_size(), 2) << what;
    EXPECT_TRUE(other.raw_output_contents(0) == mask) << what;
    ExpectNear(Floats(other.raw_output_contents(1)), reference, 1e-5f);
  }
}

TEST_F(OipTest, ProbabilitiesOnlyWhenRequestedInTheRequestedOrder) {
  const std::vector<data::Image> images = {NoiseImage(32, 32, 3, 4)};
  oip::ModelInferRequest request = RawInfer("plasmo-l1", images);
  request.add_outputs()->set_name("probabilities");
  request.add_outputs()->set_name("mask");
  oip::ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 2);
  ASSERT_EQ(response.raw_output_contents_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "probabilities");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_EQ(
      std::vector<int64_t>(response.outputs(0).shape().begin(), response.outputs(0).shape().end()),
      (std::vector<int64_t>{1, 3, 32, 32}));
  const std::string& bytes = response.raw_output_contents(0);
  ASSERT_EQ(bytes.size(), 3u * 32 * 32 * sizeof(float));
  std::vector<float> p(3 * 32 * 32);
  std::memcpy(p.data(), bytes.data(), bytes.size());
  const std::string& mask = response.raw_output_contents(1);
  for (int i = 0; i < 32 * 32; ++i) {
    EXPECT_NEAR(p[i] + p[1024 + i] + p[2048 + i], 1.0f, 1e-4);
    // The mask holds the most probable class.
    const float chosen = p[static_cast<size_t>(static_cast<uint8_t>(mask[i])) * 1024 + i];
    EXPECT_GE(chosen, std::max({p[i], p[1024 + i], p[2048 + i]}) - 1e-6f) << "pixel " << i;
  }
}

TEST_F(OipTest, BadRequestsAreInvalidArgumentNamingTheTensor) {
  const std::vector<data::Image> images = {NoiseImage(16, 16, 3, 5)};
  struct Case {
    std::string what;
    std::function<void(oip::ModelInferRequest&)> spoil;
    grpc::StatusCode code;
    std::string names;
  };
  const std::vector<Case> cases = {
      {"datatype", [](auto& r) { r.mutable_inputs(0)->set_datatype("INT64"); },
       grpc::StatusCode::INVALID_ARGUMENT, "image: datatype"},
      {"rank", [](auto& r) { r.mutable_inputs(0)->mutable_shape()->RemoveLast(); },
       grpc::StatusCode::INVALID_ARGUMENT, "image: shape"},
      {"channels", [](auto& r) { r.mutable_inputs(0)->set_shape(3, 5); },
       grpc::StatusCode::INVALID_ARGUMENT, "image: shape[3]"},
      {"input name", [](auto& r) { r.mutable_inputs(0)->set_name("pixels"); },
       grpc::StatusCode::INVALID_ARGUMENT, "'pixels'"},
      {"raw size", [](auto& r) { r.mutable_raw_input_contents(0)->pop_back(); },
       grpc::StatusCode::INVALID_ARGUMENT, "image: raw_input_contents[0]"},
      {"batch in shape", [](auto& r) { r.mutable_inputs(0)->set_shape(0, 2); },
       grpc::StatusCode::INVALID_ARGUMENT, "image: raw_input_contents[0]"},
      {"typed count",
       [](auto& r) {
         r.clear_raw_input_contents();
         r.mutable_inputs(0)->mutable_contents()->add_uint_contents(1);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "image: contents.uint_contents"},
      {"typed range",
       [](auto& r) {
         r.clear_raw_input_contents();
         for (int i = 0; i < 16 * 16 * 3; ++i) {
           r.mutable_inputs(0)->mutable_contents()->add_uint_contents(i == 7 ? 256 : 0);
         }
       },
       grpc::StatusCode::INVALID_ARGUMENT, "image: contents.uint_contents[7]"},
      {"raw and typed",
       [](auto& r) { r.mutable_inputs(0)->mutable_contents()->add_uint_contents(1); },
       grpc::StatusCode::INVALID_ARGUMENT, "image: both"},
      {"output name", [](auto& r) { r.add_outputs()->set_name("logits"); },
       grpc::StatusCode::INVALID_ARGUMENT, "'logits'"},
      {"no input",
       [](auto& r) {
         r.clear_inputs();
         r.clear_raw_input_contents();
       },
       grpc::StatusCode::INVALID_ARGUMENT, "inputs:"},
      {"version", [](auto& r) { r.set_model_version("v1"); }, grpc::StatusCode::INVALID_ARGUMENT,
       "model_version"},
      {"tile size", [](auto& r) { (*r.mutable_parameters())["tile_size"].set_int64_param(100); },
       grpc::StatusCode::INVALID_ARGUMENT, "parameters.tile_size"},
      {"model", [](auto& r) { r.set_model_name("no-such-model"); }, grpc::StatusCode::NOT_FOUND,
       "no-such-model"},
      {"missing model", [](auto& r) { r.clear_model_name(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "model_name"},
  };
  for (const Case& c : cases) {
    oip::ModelInferRequest request = RawInfer("plasmo-l1", images);
    c.spoil(request);
    oip::ModelInferResponse response;
    grpc::Status status = Infer(request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.names), std::string::npos)
        << c.what << ": '" << status.error_message() << "' does not name '" << c.names << "'";
  }
}

// A batch whose deadline passes while its images are in the engine: the call ends
// DEADLINE_EXCEEDED, the images still in flight come back (skipped or cancelled) before the
// reactor goes (ASan would see a callback into a freed reactor), and the server serves on.
TEST_F(OipTest, ADeadlineThatPassesMidBatchEndsTheCallAndTheServerServesOn) {
  std::vector<data::Image> images;
  for (int i = 0; i < 4; ++i) images.push_back(NoiseImage(512, 512, 3, 20 + i));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  oip::ModelInferResponse response;
  const grpc::Status status = stub_->ModelInfer(&context, RawInfer("plasmo-l1", images), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  oip::ModelInferResponse after;
  EXPECT_TRUE(Infer(RawInfer("plasmo-l1", {NoiseImage(32, 32, 3, 30)}), &after).ok());
}

// tests/integration/oip_client_test.py: stubs generated from proto/inference at test time
// with Debian's protoc + grpc_python_plugin, every RPC called from Python.
TEST_F(OipTest, PythonClientFromTheProtoAlone) {
  testing::CommandResult probe = testing::RunCommand(
      "/usr/bin/python3 -c 'import grpc, google.protobuf, numpy' && "
      "command -v protoc && test -x /usr/bin/grpc_python_plugin");
  if (probe.exit_code != 0) {
    GTEST_SKIP() << "needs /usr/bin/python3 with python3-grpcio, python3-protobuf and "
                    "python3-numpy, protoc "
                    "and grpc_python_plugin (scripts/install-deps.sh test): "
                 << probe.output;
  }
  testing::CommandResult run = testing::RunCommand(
      std::string("/usr/bin/python3 ") + SEGSERVE_SOURCE_DIR +
      "/tests/integration/oip_client_test.py --target " + server_->grpc_target() + " --proto_dir " +
      SEGSERVE_SOURCE_DIR + "/proto --work_dir " + dir_.path() + "/py");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("\nOK\n"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("skipped"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("test_the_docs_example_runs"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace segserve
