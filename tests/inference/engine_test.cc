// The segmentation engine against a fake model (the executor's BatchRunner seam): a request
// image goes through decode or the raw-tensor view, the model-input rules, tiling and Gaussian
// blending, argmax and class fractions, with the right status when it expires or is
// cancelled. The fake's logits are a per-pixel function of the input (class 1 where the
// pixel is brighter than half scale), so the expected mask is known for any tiling.
#include "server/inference/engine.h"

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/data/codec.h"
#include "server/inference/executor.h"
#include "server/inference/preprocess.h"

namespace segserve::inference {
namespace {

// Class 0 logit 0, class 1 logit (input - 0.5): with mean 0 and std 1 the input is the
// pixel on the [0, 1] scale.
class ThresholdRunner : public BatchRunner {
 public:
  absl::StatusOr<BatchOutput> Run(const BatchInput& input) override {
    const size_t plane = static_cast<size_t>(input.height) * input.width;
    auto logits = std::make_shared<std::vector<float>>(2 * plane * input.batch, 0.0f);
    for (int i = 0; i < input.batch; ++i) {
      const float* in = input.data + i * plane;
      float* out = logits->data() + 2 * plane * i;
      for (size_t p = 0; p < plane; ++p) out[plane + p] = in[p] - 0.5f;
    }
    batches_.fetch_add(1);
    BatchOutput out;
    out.logits = logits->data();
    out.per_item = 2 * plane;
    out.owner = std::move(logits);
    return out;
  }
  std::atomic<int> batches_{0};
};

// Left columns dark, the rest bright: x < split is class 0.
data::Image Halves(int height, int width, int split) {
  data::Image image = data::Image::Create(height, width, 1);
  for (int y = 0; y < height; ++y) {
    for (int x = split; x < width; ++x) image.bytes[static_cast<size_t>(y) * width + x] = 220;
  }
  return image;
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    auto model = std::make_shared<registry::LoadedModel>();
    model->stored.name = "threshold";
    model->stored.version = 1;
    model->stored.config.in_channels = 1;
    model->stored.config.classes = 2;
    model->stored.config.mean = {0.0f};
    model->stored.config.std = {1.0f};
    model_ = model;
  }

  absl::StatusOr<SegmentResult> Run(ImageInput input, SegmentParams params = {},
                                    Clock::time_point deadline = Clock::time_point::max(),
                                    std::shared_ptr<const CancelFlag> cancelled = nullptr) {
    absl::Notification finished;
    absl::StatusOr<SegmentResult> out = absl::UnknownError("not called");
    engine_.Segment(model_, std::move(input), params, deadline, std::move(cancelled),
                    [&](absl::StatusOr<SegmentResult> result) {
                      out = std::move(result);
                      finished.Notify();
                    });
    EXPECT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(60)));
    return out;
  }

  static void ExpectHalves(const SegmentResult& result, int height, int width, int split) {
    ASSERT_EQ(result.mask.height, height);
    ASSERT_EQ(result.mask.width, width);
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        ASSERT_EQ(result.mask.at(y, x), x < split ? 0 : 1) << "pixel " << y << "," << x;
      }
    }
    ASSERT_EQ(result.class_fractions.size(), 2u);
    EXPECT_NEAR(result.class_fractions[0], static_cast<double>(split) / width, 1e-9);
  }

  metrics::Metrics metrics_;
  SchedulerOptions options_ = [] {
    SchedulerOptions o;
    o.max_queue_delay = std::chrono::microseconds(0);
    return o;
  }();
  BatchScheduler scheduler_{options_, metrics_};
  ThresholdRunner runner_;
  Executor executor_{"cpu", scheduler_, runner_, metrics_};
  common::ThreadPool pool_{2, 16};
  SegmentationEngine engine_{{}, scheduler_, pool_};
  std::shared_ptr<const registry::LoadedModel> model_;
};

TEST_F(EngineTest, ARawTensorIsOneTileWithTheExpectedMask) {
  const data::Image image = Halves(48, 64, 20);
  const std::string bytes(image.bytes.begin(), image.bytes.end());
  auto view = RawTensorView(48, 64, 1, RawDType::kUInt8, bytes, 1 << 20);
  ASSERT_TRUE(view.ok());
  ImageInput input;
  input.raw = *view;
  auto result = Run(std::move(input));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->tiles, 1);
  EXPECT_EQ(result->model_name, "threshold");
  ExpectHalves(*result, 48, 64, 20);
}

TEST_F(EngineTest, AnEncodedImageLargerThanATileIsTiledAndBlended) {
  const data::Image image = Halves(150, 210, 77);
  auto png = data::EncodePng(image);
  ASSERT_TRUE(png.ok());
  ImageInput input;
  input.encoded = *png;
  SegmentParams params;
  params.tile_size = 64;
  params.tile_overlap = 0.25;
  params.return_probabilities = true;
  auto result = Run(std::move(input), params);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(result->tiles, 9);
  ExpectHalves(*result, 150, 210, 77);
  // Softmax of the blended logits: every pixel's probabilities sum to one.
  const size_t plane = 150 * 210;
  ASSERT_EQ(result->probabilities.size(), 2 * plane);
  for (size_t p = 0; p < plane; p += 97) {
    EXPECT_NEAR(result->probabilities[p] + result->probabilities[plane + p], 1.0, 1e-5);
  }
}

TEST_F(EngineTest, UndecodableBytesAndWrongChannelsAreInvalidArgument) {
  ImageInput garbage;
  const std::string bytes = "not an image";
  garbage.encoded = bytes;
  EXPECT_EQ(Run(std::move(garbage)).status().code(), absl::StatusCode::kInvalidArgument);

  ImageInput rgb;
  rgb.decoded = data::Image::Create(8, 8, 2);  // two channels: no rule for a gray model
  auto result = Run(std::move(rgb));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("image: has 2 channels"), std::string::npos)
      << result.status();
}

TEST_F(EngineTest, ExpiredAndCancelledRequestsNeverReachTheModel) {
  ImageInput late;
  late.decoded = Halves(16, 16, 8);
  EXPECT_EQ(Run(std::move(late), {}, Clock::now() - std::chrono::seconds(1)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  ImageInput cancelled;
  cancelled.decoded = Halves(16, 16, 8);
  auto flag = std::make_shared<CancelFlag>(true);
  EXPECT_EQ(Run(std::move(cancelled), {}, Clock::time_point::max(), flag).status().code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(runner_.batches_.load(), 0);
}

TEST_F(EngineTest, InvalidTileParametersNameTheOption) {
  ImageInput input;
  input.decoded = Halves(16, 16, 8);
  SegmentParams params;
  params.tile_size = 100;
  auto result = Run(std::move(input), params);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("options.tile_size"), std::string::npos);
}

}  // namespace
}  // namespace segserve::inference
