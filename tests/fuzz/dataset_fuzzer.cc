// File: tests/fuzz/dataset_fuzzer.cc — data-set manifest parsing: the input becomes the
// dataset.json of three fixed data sets (native layout: images/ + masks/; nnU-Net layout:
// imagesTr/ + labelsTr/; nnU-Net layout of NIfTI volumes), each holding three tiny valid
// samples or volumes, then OpenDataset runs with verify_contents=false (headers only), as
// the server does when listing data sets.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "server/data/codec.h"
#include "server/data/dataset.h"
#include "server/data/synthetic_mr.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_temp_dir.h"

namespace {

using segserve::data::Image;
using segserve::data::Mask;

void MakeSample(const std::string& image_path, const std::string& mask_path, uint8_t seed) {
  Image image = Image::Create(4, 4, 1);
  for (size_t i = 0; i < image.bytes.size(); ++i) image.bytes[i] = static_cast<uint8_t>(seed + i);
  Mask mask = Mask::Create(4, 4);
  for (size_t i = 0; i < mask.ids.size(); ++i) mask.ids[i] = static_cast<uint8_t>(i % 2);
  FUZZ_CHECK(segserve::data::WriteImageFile(image_path, image).ok());
  FUZZ_CHECK(segserve::data::WriteMaskFile(mask_path, mask).ok());
}

struct Roots {
  std::string native;
  std::string nnunet;
  std::string volumes;
};

const Roots& SetUp() {
  static const Roots roots = [] {
    namespace fs = std::filesystem;
    const std::string& dir = segserve::fuzz::TempDir("dataset");
    Roots r{dir + "/native", dir + "/nnunet", dir + "/volumes"};
    segserve::data::SyntheticMrOptions mr;
    mr.dims = {4, 4, 4};
    FUZZ_CHECK(segserve::data::WriteSyntheticMrDataset(r.volumes, 3, 1, mr).ok());
    for (const char* sub : {"/images", "/masks"}) fs::create_directories(r.native + sub);
    for (const char* sub : {"/imagesTr", "/labelsTr"}) fs::create_directories(r.nnunet + sub);
    const char* ids[] = {"a", "b", "c"};
    for (uint8_t i = 0; i < 3; ++i) {
      const std::string id = ids[i];
      MakeSample(r.native + "/images/" + id + ".png", r.native + "/masks/" + id + ".png", i);
      MakeSample(r.nnunet + "/imagesTr/" + id + "_0000.png", r.nnunet + "/labelsTr/" + id + ".png",
                 i);
    }
    return r;
  }();
  return roots;
}

void Open(const std::string& root, const uint8_t* data, size_t size) {
  {
    std::ofstream out(root + "/dataset.json", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    FUZZ_CHECK(out.good());
  }
  segserve::data::OpenOptions options;
  options.verify_contents = false;
  options.max_pixels = int64_t{1} << 20;
  const auto dataset = segserve::data::OpenDataset(root, options);
  if (!dataset.ok()) return;
  FUZZ_CHECK(dataset->channels >= 1 && dataset->channels <= 4);
  FUZZ_CHECK(!dataset->classes.empty());
  FUZZ_CHECK(dataset->train.size() + dataset->val.size() + dataset->test.size() <=
             dataset->samples.size());
  for (const auto& sample : dataset->samples) {
    FUZZ_CHECK(sample.volume < static_cast<int>(dataset->volumes.size()));
    FUZZ_CHECK(sample.height > 0 && sample.width > 0);
  }
  FUZZ_CHECK(dataset->slicing.axis >= 0 && dataset->slicing.axis <= 2);
  for (const auto* split : {&dataset->train, &dataset->val, &dataset->test}) {
    for (int index : *split) {
      FUZZ_CHECK(index >= 0 && static_cast<size_t>(index) < dataset->samples.size());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Roots& roots = SetUp();
  Open(roots.native, data, size);
  Open(roots.nnunet, data, size);
  Open(roots.volumes, data, size);
  return 0;
}
