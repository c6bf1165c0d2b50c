// The Segmentation and Models services of the real segserve binary over loopback.
#include <signal.h>

#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <thread>

#include "client/lib/client.h"
#include "gtest/gtest.h"
#include "segserve/v1/models.grpc.pb.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "server/data/codec.h"
#include "client/lib/http_get.h"
#include "tests/testing/model_fixture.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

model::UnetConfig SmallConfig(int prune_level = 1) {
  model::UnetConfig config;
  config.encoder = model::EncoderKind::kResNet18;
  config.skip_prune_level = prune_level;
  config.in_channels = 3;
  config.classes = 3;
  return config;
}

data::Image NoiseImage(int height, int width, int channels, uint64_t seed) {
  data::Image image = data::Image::Create(height, width, channels);
  std::mt19937_64 rng(seed);
  // Smooth blobs plus noise, so the model's output varies across the image.
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        const double v = 128 + 90 * std::sin(x * 0.05 + c) * std::cos(y * 0.07 - c) +
                         static_cast<double>(rng() % 40) - 20;
        image.bytes[(static_cast<size_t>(y) * width + x) * channels + c] =
            static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
      }
    }
  }
  return image;
}

v1::SegmentRequest PngRequest(const std::string& model, const data::Image& image) {
  v1::SegmentRequest request;
  request.mutable_model()->set_name(model);
  request.mutable_image()->set_encoded(*data::EncodePng(image));
  return request;
}

v1::SegmentRequest RawRequest(const std::string& model, const data::Image& image) {
  v1::SegmentRequest request;
  request.mutable_model()->set_name(model);
  auto* raw = request.mutable_image()->mutable_raw();
  raw->set_height(image.height);
  raw->set_width(image.width);
  raw->set_channels(image.channels);
  raw->set_dtype(v1::DTYPE_UINT8);
  raw->set_data(std::string(image.bytes.begin(), image.bytes.end()));
  return request;
}

class SegmentTest : public ::testing::Test {
 protected:
  void StartServer(const std::vector<std::string>& flags = {}) {
    ASSERT_TRUE(testing::AddTestModel(dir_.path(), "plasmo-l1", SmallConfig(1), 7).ok());
    auto server = testing::ServerProcess::Start(
        testing::SegserveBinary(), dir_.path(),
        [&] {
          std::vector<std::string> all = {"--aliases=l1-pruned=plasmo-l1"};
          all.insert(all.end(), flags.begin(), flags.end());
          return all;
        }());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ClientOptions options;
    options.target = server_->grpc_target();
    options.timeout = std::chrono::seconds(120);
    client_ = std::move(*client::Client::Create(options));
    auto health = client_->Health();
    for (int i = 0; i < 600 && !(health.ok() && *health == client::ServingStatus::kServing); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      health = client_->Health();
    }
    ASSERT_TRUE(health.ok() && *health == client::ServingStatus::kServing);
    stub_ = v1::Segmentation::NewStub(client_->channel());
    models_ = v1::Models::NewStub(client_->channel());
  }

  grpc::Status Segment(const v1::SegmentRequest& request, v1::SegmentResponse* response) {
    auto context = client_->NewContext();
    return stub_->Segment(context.get(), request, response);
  }

  double Metric(const std::string& series) { return server_->Metric(series); }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<v1::Segmentation::Stub> stub_;
  std::unique_ptr<v1::Models::Stub> models_;
};

TEST_F(SegmentTest, PngAndRawTensorGiveTheSameMask) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const data::Image image = NoiseImage(96, 128, 3, 1);
  v1::SegmentResponse png, raw;
  ASSERT_TRUE(Segment(PngRequest("l1-pruned", image), &png).ok());
  auto raw_request = RawRequest("plasmo-l1", image);
  raw_request.mutable_options()->set_mask_encoding(v1::MASK_RAW);
  ASSERT_TRUE(Segment(raw_request, &raw).ok());
  auto decoded = data::DecodeMask(png.mask());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::string(decoded->ids.begin(), decoded->ids.end()), raw.mask());
  EXPECT_EQ(png.model_name(), "plasmo-l1");
  EXPECT_EQ(png.model_version(), 1);
  EXPECT_EQ(png.height(), 96);
  EXPECT_EQ(png.width(), 128);
  ASSERT_EQ(png.class_fractions_size(), 3);
  EXPECT_NEAR(png.class_fractions(0) + png.class_fractions(1) + png.class_fractions(2), 1.0, 1e-9);
  EXPECT_GT(png.timings().compute_seconds(), 0);
}

TEST_F(SegmentTest, ProbabilitiesAreReturnedWhenAsked) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto request = PngRequest("l1-pruned", NoiseImage(64, 64, 3, 2));
  request.mutable_options()->set_return_probabilities(true);
  v1::SegmentResponse response;
  ASSERT_TRUE(Segment(request, &response).ok());
  const auto& probs = response.probabilities();
  ASSERT_EQ(probs.data().size(), 3u * 64 * 64 * sizeof(float));
  std::vector<float> values(3 * 64 * 64);
  std::memcpy(values.data(), probs.data().data(), probs.data().size());
  for (int p = 0; p < 64 * 64; p += 97) {
    EXPECT_NEAR(values[p] + values[4096 + p] + values[8192 + p], 1.0f, 1e-4);
  }
}

TEST_F(SegmentTest, BadInputsAreInvalidArgumentNamingTheFieldAndTheServerKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_image_pixels=1000000"}));
  struct Case {
    const char* what;
    v1::SegmentRequest request;
    const char* field;
  };
  const data::Image image = NoiseImage(32, 32, 3, 3);
  std::vector<Case> cases;
  {
    auto r = PngRequest("l1-pruned", image);
    r.mutable_image()->set_encoded("definitely not an image");
    cases.push_back({"undecodable bytes", r, "image.encoded"});
  }
  {
    auto r = PngRequest("l1-pruned", image);
    std::string png = r.image().encoded();
    png.resize(png.size() / 2);  // truncated: header fine, data missing
    r.mutable_image()->set_encoded(png);
    cases.push_back({"truncated png", r, "image"});
  }
  {
    auto r = PngRequest("l1-pruned", NoiseImage(1100, 1000, 1, 4));
    cases.push_back({"too many pixels", r, "max_image_pixels"});
  }
  {
    auto r = RawRequest("l1-pruned", image);
    r.mutable_image()->mutable_raw()->set_height(0);
    cases.push_back({"zero height", r, "image.raw.height"});
  }
  {
    auto r = RawRequest("l1-pruned", image);
    r.mutable_image()->mutable_raw()->set_channels(2);
    r.mutable_image()->mutable_raw()->set_data(std::string(32 * 32 * 2, '\0'));
    cases.push_back({"two channels", r, "channels"});
  }
  {
    auto r = RawRequest("l1-pruned", image);
    r.mutable_image()->mutable_raw()->mutable_data()->pop_back();
    cases.push_back({"size mismatch", r, "image.raw.data"});
  }
  {
    auto r = RawRequest("l1-pruned", image);
    r.mutable_image()->mutable_raw()->set_dtype(v1::DTYPE_UNSPECIFIED);
    cases.push_back({"unknown dtype", r, "image.raw.dtype"});
  }
  {
    v1::SegmentRequest r;
    r.mutable_model()->set_name("l1-pruned");
    cases.push_back({"no image", r, "image"});
  }
  {
    auto r = PngRequest("l1-pruned", image);
    r.mutable_options()->set_tile_size(100);
    cases.push_back({"bad tile size", r, "options.tile_size"});
  }
  for (const auto& c : cases) {
    v1::SegmentResponse response;
    grpc::Status status = Segment(c.request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.what;
    EXPECT_NE(status.error_message().find(c.field), std::string::npos)
        << c.what << ": " << status.error_message();
  }
  v1::SegmentResponse response;
  EXPECT_TRUE(Segment(PngRequest("l1-pruned", image), &response).ok());
}

TEST_F(SegmentTest, SizeLimitsAnswerClearlyAndTheServerKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--max_tiles_per_request=4", "--tile_size=64", "--max_message_bytes=1048576"}));
  v1::SegmentResponse response;
  // 256x256 in 64 px tiles with the default overlap needs more than 4 tiles.
  grpc::Status tiles = Segment(PngRequest("l1-pruned", NoiseImage(256, 256, 3, 5)), &response);
  EXPECT_EQ(tiles.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << tiles.error_message();
  EXPECT_NE(tiles.error_message().find("--max_tiles_per_request"), std::string::npos)
      << tiles.error_message();
  // A message over --max_message_bytes is refused by gRPC before it is parsed.
  auto big = RawRequest("l1-pruned", NoiseImage(32, 32, 3, 6));
  big.mutable_image()->mutable_raw()->set_data(std::string(2 << 20, '\0'));
  grpc::Status message = Segment(big, &response);
  EXPECT_EQ(message.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << message.error_message();
  EXPECT_NE(message.error_message().find("1048576"), std::string::npos) << message.error_message();
  EXPECT_TRUE(Segment(PngRequest("l1-pruned", NoiseImage(64, 64, 3, 7)), &response).ok());
}

TEST_F(SegmentTest, UnknownModelIsNotFoundAndUnloadedModelIsFailedPrecondition) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::SegmentResponse response;
  EXPECT_EQ(Segment(PngRequest("no-such-model", NoiseImage(32, 32, 3, 5)), &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  {
    auto context = client_->NewContext();
    v1::UnloadModelRequest request;
    request.mutable_model()->set_name("plasmo-l1");
    v1::ModelInfo info;
    ASSERT_TRUE(models_->Unload(context.get(), request, &info).ok());
    EXPECT_EQ(info.state(), v1::LOAD_STATE_UNLOADED);
  }
  grpc::Status status = Segment(PngRequest("l1-pruned", NoiseImage(32, 32, 3, 5)), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
}

TEST_F(SegmentTest, ConcurrentClientsGetCorrectMasksInSharedBatches) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_queue_delay_ms=20"}));
  const data::Image image = NoiseImage(64, 64, 3, 6);
  v1::SegmentResponse reference;
  ASSERT_TRUE(Segment(PngRequest("l1-pruned", image), &reference).ok());
  std::atomic<int> ok{0}, same{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 32; ++i) {
    clients.emplace_back([&] {
      v1::SegmentResponse response;
      if (Segment(PngRequest("l1-pruned", image), &response).ok()) {
        ++ok;
        if (response.mask() == reference.mask()) ++same;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 32);
  EXPECT_EQ(same.load(), 32);
  const double batches = Metric("segserve_inference_batch_size_count");
  const double items = Metric("segserve_inference_batch_size_sum");
  EXPECT_EQ(items, 33);
  EXPECT_LT(batches, items) << "no batch larger than 1 formed";
}

TEST_F(SegmentTest, FullQueueAnswersResourceExhaustedAtOnce) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_queue=1", "--max_batch_size=1", "--cpu_threads=1"}));
  const data::Image image = NoiseImage(256, 256, 3, 8);
  const auto request = RawRequest("l1-pruned", image);
  std::atomic<int> ok{0}, exhausted{0}, other{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 24; ++i) {
    clients.emplace_back([&] {
      v1::SegmentResponse response;
      const grpc::Status status = Segment(request, &response);
      if (status.ok()) {
        ++ok;
      } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++exhausted;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(exhausted.load(), 0);
  EXPECT_EQ(other.load(), 0);
  v1::SegmentResponse response;
  EXPECT_TRUE(Segment(request, &response).ok());
}

TEST_F(SegmentTest, ExpiredDeadlineIsDeadlineExceededAndTheWorkIsSkipped) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_batch_size=1"}));
  // Occupy the executor with a large image, then queue a small one with a short deadline.
  auto big = RawRequest("l1-pruned", NoiseImage(1024, 1024, 3, 9));
  v1::SegmentResponse big_response;
  std::thread blocker([&] { EXPECT_TRUE(Segment(big, &big_response).ok()); });
  const std::string images = R"(segserve_images_total{model="plasmo-l1"})";
  while (Metric("segserve_queue_depth{model=\"plasmo-l1\"}") < 0 && Metric(images) < 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  v1::SegmentResponse response;
  const grpc::Status status =
      stub_->Segment(&context, RawRequest("l1-pruned", NoiseImage(64, 64, 3, 10)), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  blocker.join();
  // Give the executor a moment to pass the expired item, then check it was never computed.
  v1::SegmentResponse after;
  ASSERT_TRUE(Segment(RawRequest("l1-pruned", NoiseImage(64, 64, 3, 11)), &after).ok());
  // The big image's tiles plus the final 64x64 ran; the expired request never did.
  EXPECT_GT(big_response.tiles(), 1);
  EXPECT_EQ(Metric(images), big_response.tiles() + 1);
}

TEST_F(SegmentTest, ClientCancellationSkipsTheQueuedWork) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_batch_size=1"}));
  auto big = RawRequest("l1-pruned", NoiseImage(1024, 1024, 3, 13));
  v1::SegmentResponse big_response;
  std::thread blocker([&] { EXPECT_TRUE(Segment(big, &big_response).ok()); });
  const std::string images = R"(segserve_images_total{model="plasmo-l1"})";
  while (Metric(images) < 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  grpc::ClientContext context;
  v1::SegmentResponse response;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    context.TryCancel();
  });
  const grpc::Status status =
      stub_->Segment(&context, RawRequest("l1-pruned", NoiseImage(64, 64, 3, 14)), &response);
  canceller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  blocker.join();
  v1::SegmentResponse after;
  ASSERT_TRUE(Segment(RawRequest("l1-pruned", NoiseImage(64, 64, 3, 15)), &after).ok());
  EXPECT_EQ(Metric(images), big_response.tiles() + 1) << "the cancelled request was computed";
}

TEST_F(SegmentTest, LargeImageThroughTilesMatchesTheWholeImage) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--tile_size=256"}));
  const data::Image image = NoiseImage(640, 896, 3, 12);
  auto tiled_request = RawRequest("l1-pruned", image);
  tiled_request.mutable_options()->set_mask_encoding(v1::MASK_RAW);
  tiled_request.mutable_options()->set_return_probabilities(true);
  v1::SegmentResponse tiled, whole;
  ASSERT_TRUE(Segment(tiled_request, &tiled).ok());
  EXPECT_GT(tiled.tiles(), 1);
  auto whole_request = tiled_request;
  whole_request.mutable_options()->set_tile_size(1024);
  ASSERT_TRUE(Segment(whole_request, &whole).ok());
  EXPECT_EQ(whole.tiles(), 1);
  ASSERT_EQ(tiled.mask().size(), whole.mask().size());
  size_t agree = 0;
  for (size_t i = 0; i < tiled.mask().size(); ++i) agree += tiled.mask()[i] == whole.mask()[i];
  const double agreement = static_cast<double>(agree) / tiled.mask().size();
  EXPECT_GT(agreement, 0.97) << "tiled and whole-image masks agree on " << agreement;
  // Probabilities: blended tiles stay close to the whole-image forward pass, and they vary
  // across the image, so the comparison means something even where the argmax is flat.
  const size_t n = tiled.probabilities().data().size() / sizeof(float);
  ASSERT_EQ(n, whole.probabilities().data().size() / sizeof(float));
  std::vector<float> a(n), b(n);
  std::memcpy(a.data(), tiled.probabilities().data().data(), n * sizeof(float));
  std::memcpy(b.data(), whole.probabilities().data().data(), n * sizeof(float));
  double diff = 0, mean = 0, var = 0;
  for (size_t i = 0; i < n; ++i) {
    diff += std::abs(a[i] - b[i]);
    mean += b[i];
  }
  diff /= n;
  mean /= n;
  for (size_t i = 0; i < n; ++i) var += (b[i] - mean) * (b[i] - mean);
  EXPECT_LT(diff, 0.02) << "mean |p_tiled - p_whole|";
  EXPECT_GT(std::sqrt(var / n), 10 * diff) << "probabilities barely vary; test is too weak";
}

TEST_F(SegmentTest, StreamAnswersEveryRequestWithItsId) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_stream_inflight=4"}));
  grpc::ClientContext context;
  auto stream = stub_->SegmentStream(&context);
  const int n = 20;
  std::thread writer([&] {
    for (int i = 0; i < n; ++i) {
      auto request = PngRequest(i == 7 ? "no-such-model" : "l1-pruned", NoiseImage(64, 64, 3, i));
      request.set_request_id("img-" + std::to_string(i));
      ASSERT_TRUE(stream->Write(request));
    }
    stream->WritesDone();
  });
  std::set<std::string> ids;
  int errors = 0;
  v1::SegmentResponse response;
  while (stream->Read(&response)) {
    ids.insert(response.request_id());
    if (response.has_error()) {
      ++errors;
      EXPECT_EQ(response.request_id(), "img-7");
      EXPECT_EQ(response.error().code(), grpc::StatusCode::NOT_FOUND);
    } else {
      EXPECT_FALSE(response.mask().empty());
    }
  }
  writer.join();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(ids.size(), static_cast<size_t>(n));
  EXPECT_EQ(errors, 1);
}

// Requests that fail validation are answered inside SegmentationService::Start, i.e. on
// the reactor's own OnReadDone: with one request in flight at a time, each such answer
// must release the read back-pressure without deadlocking the stream (it used to rely on
// a recursive mutex).
TEST_F(SegmentTest, StreamAnswersRequestsThatFailAtOnceOneAtATime) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_stream_inflight=1"}));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub_->SegmentStream(&context);
  const int n = 12;
  std::thread writer([&] {
    for (int i = 0; i < n; ++i) {
      auto request =
          PngRequest(i % 3 == 2 ? "l1-pruned" : "no-such-model", NoiseImage(64, 64, 3, i));
      request.set_request_id("req-" + std::to_string(i));
      ASSERT_TRUE(stream->Write(request));
    }
    stream->WritesDone();
  });
  std::set<std::string> ids;
  int not_found = 0;
  v1::SegmentResponse response;
  while (stream->Read(&response)) {
    ids.insert(response.request_id());
    if (response.has_error()) {
      EXPECT_EQ(response.error().code(), grpc::StatusCode::NOT_FOUND) << response.request_id();
      ++not_found;
    } else {
      EXPECT_FALSE(response.mask().empty());
    }
  }
  writer.join();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(ids.size(), static_cast<size_t>(n));
  EXPECT_EQ(not_found, 8);
}

TEST_F(SegmentTest, ReloadUnderLoadLosesNoRequest) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::set<int64_t> versions_seen;
  std::mutex mu;
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      while (!stop.load()) {
        v1::SegmentResponse response;
        if (Segment(PngRequest("l1-pruned", NoiseImage(64, 64, 3, i)), &response).ok()) {
          ++ok;
          std::lock_guard<std::mutex> lock(mu);
          versions_seen.insert(response.model_version());
        } else {
          ++failed;
        }
      }
    });
  }
  // Import version 2 and load it while the clients run; then unload version 1.
  auto state_dict = testing::TestModelStateDict(SmallConfig(1), 99);
  ASSERT_TRUE(state_dict.ok()) << state_dict.status();
  v1::ImportModelRequest import;
  import.set_name("plasmo-l1");
  import.mutable_config()->set_encoder(v1::ENCODER_RESNET18);
  import.mutable_config()->set_skip_prune_level(1);
  import.mutable_config()->set_classes(3);
  import.set_state_dict(*state_dict);
  import.set_load(true);
  v1::ModelInfo info;
  {
    auto context = client_->NewContext();
    grpc::Status status = models_->Import(context.get(), import, &info);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(info.version(), 2);
  EXPECT_EQ(info.state(), v1::LOAD_STATE_LOADED);
  {
    auto context = client_->NewContext();
    v1::UnloadModelRequest unload;
    unload.mutable_model()->set_name("plasmo-l1");
    unload.mutable_model()->set_version(1);
    ASSERT_TRUE(models_->Unload(context.get(), unload, &info).ok());
  }
  const int after_swap = ok.load();
  while (ok.load() < after_swap + 8) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_TRUE(versions_seen.count(1));
  EXPECT_TRUE(versions_seen.count(2));
  v1::ListModelsResponse list;
  auto context = client_->NewContext();
  ASSERT_TRUE(models_->List(context.get(), v1::ListModelsRequest(), &list).ok());
  ASSERT_EQ(list.models_size(), 2);
  EXPECT_EQ(list.aliases().at("l1-pruned"), "plasmo-l1");
}

}  // namespace
}  // namespace segserve
