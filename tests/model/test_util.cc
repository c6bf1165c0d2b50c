#include "tests/model/test_util.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "gtest/gtest.h"
#include "server/model/state_dict.h"
#include "test_paths.h"

namespace segserve::model::testing {

namespace {

// The directories MakeTempDir made, removed when the process exits (every test runs in a
// process of its own under ctest; the Python reference alone is ~700 MB).
struct TempDirs {
  ~TempDirs() {
    std::error_code ec;
    for (const std::string& dir : dirs) std::filesystem::remove_all(dir, ec);
  }
  std::vector<std::string> dirs;
};

TempDirs& MadeDirs() {
  static TempDirs made;
  return made;
}

}  // namespace

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "/segserve_model_XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) return "";
  MadeDirs().dirs.push_back(buffer.data());
  return std::string(buffer.data());
}

void RandomiseBatchNorm(Unet& model, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& entry : GetStateDict(*model)) {
    const std::string& name = entry.first;
    torch::Tensor& tensor = entry.second;
    auto ends_with = [&](const std::string& suffix) {
      return name.size() >= suffix.size() &&
             name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    const bool is_bn = tensor.dim() == 1 && name.find("segmentation_head") == std::string::npos;
    if (ends_with("num_batches_tracked")) {
      tensor.fill_(3);
    } else if (ends_with("running_var")) {
      tensor.uniform_(0.75, 1.25);
    } else if (ends_with("running_mean")) {
      tensor.normal_(0.0, 0.1);
    } else if (is_bn && ends_with(".weight")) {
      tensor.uniform_(0.75, 1.25);
    } else if (is_bn && ends_with(".bias")) {
      tensor.normal_(0.0, 0.1);
    }
  }
}

Unet CopyOf(Unet& model) {
  Unet copy(model->config());
  auto report = LoadStateDict(copy, GetStateDict(*model));
  EXPECT_TRUE(report.ok()) << report.status();
  copy->train(model->is_training());
  return copy;
}

const std::string& PythonReferenceDir(std::string* why) {
  static std::string* dir = nullptr;
  static std::string* reason = nullptr;
  if (dir == nullptr) {
    dir = new std::string;
    reason = new std::string;
    if (std::system("/usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1") != 0) {
      *reason =
          "/usr/bin/python3 cannot import torch and torchvision (apt-get install python3-torch "
          "python3-torchvision)";
    } else {
      const std::string out = MakeTempDir();
      const std::string command = std::string("/usr/bin/python3 ") + SEGSERVE_SOURCE_DIR +
                                  "/tests/model/reference_unet.py equivalence " + out;
      if (std::system(command.c_str()) != 0 || access((out + "/DONE").c_str(), F_OK) != 0) {
        *reason = "reference_unet.py failed: " + command;
      } else {
        *dir = out;
      }
    }
  }
  if (why != nullptr) *why = *reason;
  return *dir;
}

}  // namespace segserve::model::testing
