// File: tests/fuzz/raw_tensor_fuzzer.cc — raw-tensor validation (ImageFromRaw) and the
// conversion to a model input (ToModelInput) with a model config taken from the input.
//
// Input layout (FuzzedDataProvider): a mode byte; height, width, channels (either any int32
// or a small value, so that both overflow checks and the happy path are reached); dtype; the
// config (in_channels, optional mean/std); the rest is the tensor data, cut or zero-padded to
// the expected size in "fit" mode so that most inputs reach ToModelInput.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "server/inference/preprocess.h"
#include "server/model/model_config.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr int64_t kMaxPixels = int64_t{1} << 20;

int Dimension(FuzzedDataProvider& in, bool small) {
  return small ? in.ConsumeIntegralInRange<int>(-1, 64) : in.ConsumeIntegral<int>();
}

std::vector<float> Floats(FuzzedDataProvider& in) {
  std::vector<float> values(in.ConsumeIntegralInRange<size_t>(0, 5));
  for (float& v : values) v = in.ConsumeFloatingPoint<float>();
  return values;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace segserve;
  FuzzedDataProvider in(data, size);
  const uint8_t mode = in.ConsumeIntegral<uint8_t>();
  const bool small = (mode & 1) != 0;
  const bool fit = (mode & 2) != 0;
  const int height = Dimension(in, small);
  const int width = Dimension(in, small);
  const int channels = small ? in.ConsumeIntegralInRange<int>(0, 5) : in.ConsumeIntegral<int>();
  const auto dtype = in.PickValueInArray(
      {inference::RawDType::kUInt8, inference::RawDType::kUInt16, inference::RawDType::kFloat32});

  model::UnetConfig config;
  config.in_channels = in.ConsumeIntegralInRange<int>(0, 5);
  config.classes = in.ConsumeIntegralInRange<int>(1, 4);
  if (mode & 4) {
    config.mean = Floats(in);
    config.std = Floats(in);
  }

  std::string bytes = in.ConsumeRemainingBytesAsString();
  if (fit && height > 0 && width > 0 && channels > 0 &&
      static_cast<int64_t>(height) * width <= kMaxPixels && channels <= 4) {
    const size_t sample = dtype == inference::RawDType::kUInt8    ? 1
                          : dtype == inference::RawDType::kUInt16 ? 2
                                                                  : 4;
    bytes.resize(static_cast<size_t>(height) * width * channels * sample);
  }

  auto image = inference::RawTensorView(height, width, channels, dtype, bytes, kMaxPixels);
  if (!image.ok()) return 0;
  FUZZ_CHECK(image->height == height && image->width == width && image->channels == channels);
  FUZZ_CHECK(image->bytes == reinterpret_cast<const uint8_t*>(bytes.data()));  // not copied
  FUZZ_CHECK(image->num_pixels() * image->channels * data::BytesPerSample(image->depth) ==
             bytes.size());

  // The engine only ever sees validated configs (models are validated when loaded).
  if (!model::Validate(config).ok()) return 0;
  auto planar = inference::ToModelInput(*image, config);
  if (!planar.ok()) return 0;
  FUZZ_CHECK(planar->channels == config.in_channels);
  FUZZ_CHECK(planar->data.size() ==
             static_cast<size_t>(planar->channels) * planar->height * planar->width);
  return 0;
}
