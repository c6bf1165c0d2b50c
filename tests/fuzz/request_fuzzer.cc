// File: tests/fuzz/request_fuzzer.cc — request conversion (proto -> domain): the input is
// parsed as a serialized segserve.v1.SegmentRequest, TrainSpec and ModelConfig (whichever
// parse) and run through the converters the gRPC handlers call before any work is queued.
// TrainSpecsFromProto sees a data directory holding datasets/tiny/ and pretrained/r18.pt, so
// that specs naming them get past the existence checks.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "segserve/v1/segmentation.pb.h"
#include "segserve/v1/training.pb.h"
#include "server/api/converters.h"
#include "server/api/train_spec_converter.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_temp_dir.h"

namespace {

constexpr int64_t kMaxPixels = int64_t{1} << 20;

const std::string& DataDir() {
  static const std::string dir = [] {
    const std::string& d = segserve::fuzz::TempDir("request");
    std::filesystem::create_directories(d + "/datasets/tiny");
    std::filesystem::create_directories(d + "/datasets/other");
    std::filesystem::create_directories(d + "/pretrained");
    std::ofstream(d + "/pretrained/r18.pt") << "not a real state dict";
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace segserve;
  const std::string& data_dir = DataDir();
  const int len = static_cast<int>(size);

  v1::SegmentRequest request;
  if (request.ParseFromArray(data, len)) {
    auto image = api::ImageFromProto(request.image(), kMaxPixels);
    if (image.ok() && image->decoded.has_value()) {
      const data::Image& decoded = *image->decoded;
      FUZZ_CHECK(static_cast<int64_t>(decoded.height) * decoded.width <= kMaxPixels);
      FUZZ_CHECK(data::ValidateImage(decoded).ok());
    }
    (void)api::ParamsFromProto(request.options());
  }

  v1::TrainSpec spec;
  if (spec.ParseFromArray(data, len)) {
    auto specs = api::TrainSpecsFromProto(spec, data_dir);
    if (specs.ok()) {
      FUZZ_CHECK(!specs->children.empty());
      for (const std::string& child : specs->children) {
        v1::TrainSpec round_trip;
        api::TrainSpecToProto(child, &round_trip);
      }
    }
  }

  v1::ModelConfig config;
  if (config.ParseFromArray(data, len)) {
    auto parsed = api::ConfigFromProto(config);
    if (parsed.ok()) {
      FUZZ_CHECK(model::Validate(*parsed).ok());
      v1::ModelConfig back;
      api::ConfigToProto(*parsed, &back);
    }
  }
  return 0;
}
