// File: tests/fuzz/image_fuzzer.cc — image decoding + validation: ProbeImage, DecodeImage and
// DecodeMask on arbitrary bytes, with a 1 Mpx budget so that a decompression bomb is a
// finding (the budget must be enforced from the header), not an out-of-memory.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/data/codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr int64_t kMaxPixels = int64_t{1} << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace segserve::data;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  const auto info = ProbeImage(bytes);
  if (info.ok()) {
    FUZZ_CHECK(info->width >= 0 && info->height >= 0 && info->channels >= 0);
  }

  const auto image = DecodeImage(bytes, kMaxPixels);
  if (image.ok()) {
    // The header promised what was decoded, and the pixel budget held.
    FUZZ_CHECK(info.ok());
    FUZZ_CHECK(image->width > 0 && image->height > 0);
    FUZZ_CHECK(static_cast<int64_t>(image->width) * image->height <= kMaxPixels);
    FUZZ_CHECK(image->channels >= 1 && image->channels <= 4);
    FUZZ_CHECK(image->bytes.size() == image->num_samples() * BytesPerSample(image->depth));
    FUZZ_CHECK(ValidateImage(*image).ok());
  }

  const auto mask = DecodeMask(bytes, kMaxPixels);
  if (mask.ok()) {
    FUZZ_CHECK(static_cast<int64_t>(mask->width) * mask->height <= kMaxPixels);
    FUZZ_CHECK(mask->ids.size() == mask->num_pixels());
  }
  return 0;
}
