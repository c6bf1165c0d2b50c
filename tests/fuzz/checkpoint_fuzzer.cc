// File: tests/fuzz/checkpoint_fuzzer.cc — checkpoint loading: ParseCheckpoint (segserve's own
// format) and ParseStateDict (torch.save zip + pickle). The first byte picks the mode:
//   0 mod 3: ParseCheckpoint on the rest as-is (magic, length, checksum trailer checks);
//   1 mod 3: ParseCheckpoint on the rest plus a correct "sha256:<hex>" trailer, so that the
//            header JSON, tensor table and model build are fuzzed past the checksum;
//   2 mod 3: ParseStateDict on the rest.
// A full U-net checkpoint is ~57 MB; the corpus holds header-only and truncated variants,
// and scripts/fuzz.sh runs this target with a small -max_len and a per-input timeout
// (a valid header builds a Unet from its config: ~0.1-1 s under ASan).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/common/sha256.h"
#include "server/model/checkpoint.h"
#include "server/model/state_dict.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace segserve;
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 3;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode) {
    case 0:
    case 1: {
      if (mode == 1) bytes += "sha256:" + common::Sha256Hex(bytes);
      auto loaded = model::ParseCheckpoint(bytes);
      if (loaded.ok()) {
        FUZZ_CHECK(!loaded->model.is_empty());
        FUZZ_CHECK(model::Validate(loaded->info.config).ok());
      }
      break;
    }
    default: {
      auto dict = model::ParseStateDict(bytes);
      if (dict.ok()) {
        for (const auto& [name, tensor] : *dict) FUZZ_CHECK(tensor.defined());
      }
      break;
    }
  }
  return 0;
}
