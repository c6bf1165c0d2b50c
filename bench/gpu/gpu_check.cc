// File: bench/gpu/gpu_check.cc — the GPU acceptance check (issue 18), built from common/ and
// model/ alone so that it builds on a GPU machine that has LibTorch and Abseil but not the
// rest of segserve's dependencies (scripts/gpu-check.sh).
//
// Checks, each printed as `check,<name>,PASS|FAIL,<detail>`:
//   device       the device is usable by this build (model::CheckDevice)
//   forward      U-net resnet18/34 L0/L1 on the device vs the CPU, same weights and input:
//                fp32 max relative error < 1e-3 and argmax agreement >= 99.9% (TF32 off)
//   serving      ServableModel (BN folded, channels-last: what the executor runs) on the
//                device vs on the CPU, a batch of 8, same thresholds
//   train        steps of Adam on the device lower the CE + Dice loss
//   autocast     bf16 autocast inference of the trained model runs and agrees with fp32
//                (argmax >= 99%)
// Figures, CSV (scripts/gpu-check.sh joins them with the Python reference):
//   perf,cpp,<encoder>,<level>,<size>,<batch>,<fp32|bf16>,<images_per_s>
//   train,cpp,<encoder>,<level>,<size>,<batch>,<fp32|bf16>,<images_per_s>
//   matmul,cpp,bf16,<tflops>
// Usage: gpu_check [--device cuda:0] [--quick] [--seconds S] [--no-perf]
// --quick: resnet18 only and small tensors in the device checks, small sizes in the figures.
// On a CPU-only build `--device cpu` runs the same code as a rehearsal (CI builds it).
#include <ATen/Context.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench/model/random_unet.h"
#include "server/model/autocast.h"
#include "server/model/device.h"
#include "server/model/loss.h"
#include "server/model/servable_model.h"
#include "server/model/unet.h"

namespace {

using segserve::model::AutocastGuard;
using segserve::model::EncoderKind;
using segserve::model::ServableModel;
using segserve::model::ServeOptions;
using segserve::model::Unet;
using segserve::model::UnetConfig;

int failures = 0;

void Check(const std::string& name, bool pass, const std::string& detail) {
  std::printf("check,%s,%s,%s\n", name.c_str(), pass ? "PASS" : "FAIL", detail.c_str());
  std::fflush(stdout);
  if (!pass) ++failures;
}

void Sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

struct Agreement {
  double max_rel = 0;   // max |a - b| / max |b|
  double argmax = 0;    // fraction of pixels with the same argmax class
};

Agreement Compare(const torch::Tensor& got, const torch::Tensor& want) {
  const torch::Tensor a = got.to(torch::kCPU, torch::kFloat32);
  const torch::Tensor b = want.to(torch::kCPU, torch::kFloat32);
  Agreement r;
  r.max_rel = ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
  r.argmax = a.argmax(1).eq(b.argmax(1)).to(torch::kFloat64).mean().item<double>();
  return r;
}

std::string Describe(const Agreement& a) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "max_rel=%.3g argmax=%.5f", a.max_rel, a.argmax);
  return buf;
}

// Tensor sizes of the checks. --quick (the CPU rehearsal in ctest, under ASan) shrinks them:
// the same code paths, a fraction of the arithmetic.
struct CheckSizes {
  int forward = 256, odd_h = 200, odd_w = 136;  // CheckForward: square and odd sizes
  int serve_batch = 8, serve_size = 256;        // CheckServing
  int train_batch = 8, train_size = 128;        // CheckTraining, CheckAutocast
};
CheckSizes sizes;

Unet RandomUnet(EncoderKind encoder, int level) {
  UnetConfig config;
  config.encoder = encoder;
  config.skip_prune_level = level;
  Unet model(config);
  segserve::bench::Calibrate(model);
  return model;
}

std::string Name(EncoderKind encoder, int level) {
  return std::string(segserve::model::EncoderName(encoder)) + "_L" + std::to_string(level);
}

// Raw U-net (no folding) on the device against the CPU: the kernels, not the serving tricks.
void CheckForward(const torch::Device& device, EncoderKind encoder, int level) {
  torch::NoGradGuard no_grad;
  Unet cpu = RandomUnet(encoder, level);
  Unet dev = segserve::bench::CopyOf(cpu);
  dev->to(device);
  // A square and an odd size (no padding: each decoder block upsamples to its level's size).
  for (auto hw : {std::pair<int, int>{sizes.forward, sizes.forward},
                  std::pair<int, int>{sizes.odd_h, sizes.odd_w}}) {
    const torch::Tensor x = torch::randn({2, 3, hw.first, hw.second});
    const Agreement a = Compare(dev->forward(x.to(device)), cpu->forward(x));
    Check("forward_" + Name(encoder, level) + "_" + std::to_string(hw.first) + "x" +
              std::to_string(hw.second),
          a.max_rel < 1e-3 && a.argmax >= 0.999, Describe(a));
  }
}

// What the executor runs: ServableModel with BN folded and channels-last, a batch.
void CheckServing(const torch::Device& device, EncoderKind encoder, int level) {
  Unet base = RandomUnet(encoder, level);
  ServeOptions cpu_options;
  ServeOptions dev_options;
  dev_options.device = device.str();
  auto cpu = ServableModel::Create(segserve::bench::CopyOf(base), cpu_options);
  auto dev = ServableModel::Create(segserve::bench::CopyOf(base), dev_options);
  if (!cpu.ok() || !dev.ok()) {
    Check("serving_" + Name(encoder, level), false,
          (cpu.ok() ? dev.status() : cpu.status()).ToString());
    return;
  }
  const torch::Tensor x = torch::randn({sizes.serve_batch, 3, sizes.serve_size, sizes.serve_size});
  auto want = (*cpu)->Forward(x);
  auto got = (*dev)->Forward(x);
  if (!want.ok() || !got.ok()) {
    Check("serving_" + Name(encoder, level), false,
          (want.ok() ? got.status() : want.status()).ToString());
    return;
  }
  const bool on_device = got->device() == device;
  const Agreement a = Compare(*got, *want);
  Check("serving_" + Name(encoder, level), on_device && a.max_rel < 1e-3 && a.argmax >= 0.999,
        Describe(a) + (on_device ? "" : " (logits not on the device)"));
}

// Inputs with a learnable target: foreground where a smoothed channel is bright.
std::pair<torch::Tensor, torch::Tensor> TrainingBatch(int n, int size) {
  const torch::Tensor x = torch::randn({n, 3, size, size});
  const torch::Tensor smooth = torch::avg_pool2d(x.narrow(1, 0, 1), 9, 1, 4);
  const torch::Tensor y = smooth.squeeze(1).gt(0).to(torch::kLong);
  return {x, y};
}

// Returns the trained model (its logits have a trained net's margins, unlike random weights).
Unet CheckTraining(const torch::Device& device, bool bf16) {
  torch::manual_seed(1);
  UnetConfig config;
  config.skip_prune_level = 1;
  Unet model(config);
  model->to(device);
  model->train();
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-3));
  auto [x, y] = TrainingBatch(sizes.train_batch, sizes.train_size);
  x = x.to(device);
  y = y.to(device);
  std::vector<double> losses;
  for (int step = 0; step < 25; ++step) {
    adam.zero_grad();
    torch::Tensor loss;
    if (bf16) {
      AutocastGuard autocast(device, torch::kBFloat16);
      loss = segserve::model::SegmentationLoss(model->forward(x).to(torch::kFloat32), y, 1, 1);
    } else {
      loss = segserve::model::SegmentationLoss(model->forward(x), y, 1, 1);
    }
    loss.backward();
    adam.step();
    losses.push_back(loss.item<double>());
  }
  const double first = losses.front();
  const double last = (losses[22] + losses[23] + losses[24]) / 3;
  char detail[96];
  std::snprintf(detail, sizeof detail, "loss %.4f -> %.4f over 25 steps", first, last);
  Check(bf16 ? "train_bf16_autocast" : "train_fp32", std::isfinite(last) && last < 0.8 * first,
        detail);
  return model;
}

// On the model trained by CheckTraining: random weights have tiny logit margins, where bf16
// rounding flips ~4% of pixels (docs/PERFORMANCE.md) without saying anything about bf16.
void CheckAutocast(const torch::Device& device, Unet& model) {
  torch::NoGradGuard no_grad;
  model->eval();
  const torch::Tensor x =
      TrainingBatch(std::max(2, sizes.train_batch / 2), sizes.train_size).first.to(device);
  const torch::Tensor fp32 = model->forward(x);
  torch::Tensor mixed;
  {
    AutocastGuard autocast(device, torch::kBFloat16);
    mixed = model->forward(x);
  }
  const Agreement a = Compare(mixed, fp32);
  Check("autocast_bf16_inference", mixed.scalar_type() == torch::kBFloat16 && a.argmax >= 0.99,
        Describe(a) + " dtype=" + std::string(c10::toString(mixed.scalar_type())));
}

// NHWC parameters and buffers, as training does with channels_last (in place).
void ToChannelsLast(Unet& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

double ImagesPerSecond(const std::function<void()>& step, int batch, const torch::Device& device,
                       double seconds) {
  step();  // warm-up: cuDNN algorithm choice, oneDNN primitives
  step();
  Sync(device);
  int iterations = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (iterations < 3 || elapsed < seconds) {
    step();
    ++iterations;
    Sync(device);
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return iterations * batch / elapsed;
}

void Perf(const torch::Device& device, bool quick, double seconds) {
  for (EncoderKind encoder : {EncoderKind::kResNet18, EncoderKind::kResNet34}) {
    Unet base = RandomUnet(encoder, 1);
    for (bool bf16 : {false, true}) {
      ServeOptions options;
      options.device = device.str();
      options.bfloat16 = bf16;
      auto model = ServableModel::Create(segserve::bench::CopyOf(base), options);
      if (!model.ok()) {
        Check("perf_model", false, model.status().ToString());
        return;
      }
      for (int size : {256, 512}) {
        for (int batch : {1, 8, 32}) {
          if (quick && (size == 512 || batch == 32)) continue;
          const torch::Tensor x = torch::randn({batch, 3, size, size}).to(device);
          const double ips = ImagesPerSecond(
              [&] {
                if (!(*model)->Forward(x).ok()) std::exit(1);
              },
              batch, device, seconds);
          std::printf("perf,cpp,%s,1,%d,%d,%s,%.2f\n",
                      std::string(segserve::model::EncoderName(encoder)).c_str(), size, batch,
                      bf16 ? "bf16" : "fp32", ips);
          std::fflush(stdout);
        }
      }
    }
  }
  // Training throughput: resnet18 L1, batch 16, 256x256, channels-last, Adam.
  for (bool bf16 : {false, true}) {
    UnetConfig config;
    config.skip_prune_level = 1;
    Unet model(config);
    model->to(device);
    ToChannelsLast(model);
    model->train();
    torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-3));
    const int batch = 16, size = quick ? 128 : 256;
    const auto data = TrainingBatch(batch, size);
    const torch::Tensor x = data.first.to(device).contiguous(torch::MemoryFormat::ChannelsLast);
    const torch::Tensor y = data.second.to(device);
    const double ips = ImagesPerSecond(
        [&] {
          adam.zero_grad();
          torch::Tensor loss;
          if (bf16) {
            AutocastGuard autocast(device, torch::kBFloat16);
            loss = segserve::model::SegmentationLoss(model->forward(x).to(torch::kFloat32), y, 1,
                                                     1);
          } else {
            loss = segserve::model::SegmentationLoss(model->forward(x), y, 1, 1);
          }
          loss.backward();
          adam.step();
        },
        batch, device, seconds);
    std::printf("train,cpp,resnet18,1,%d,%d,%s,%.2f\n", size, batch, bf16 ? "bf16" : "fp32", ips);
    std::fflush(stdout);
  }
  // The ceiling figures are compared with: a dense bf16 matrix product.
  const int n = quick ? 2048 : 8192;
  const torch::Tensor a = torch::randn({n, n}).to(device, torch::kBFloat16);
  const torch::Tensor b = torch::randn({n, n}).to(device, torch::kBFloat16);
  const double per_s = ImagesPerSecond([&] { (void)torch::mm(a, b); }, 1, device, seconds);
  std::printf("matmul,cpp,bf16,%.2f\n", per_s * 2.0 * n * n * n / 1e12);
}

}  // namespace

int main(int argc, char** argv) {
  std::string device_name = "cuda:0";
  bool quick = false, perf = true;
  double seconds = 2.0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--device") && i + 1 < argc) device_name = argv[++i];
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--no-perf")) perf = false;
    if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = std::atof(argv[++i]);
  }
  if (quick) sizes = {64, 72, 40, 2, 64, 4, 64};
  std::printf("build,%s\n", segserve::model::TorchBuildSummary().c_str());
  const absl::Status usable = segserve::model::CheckDevice(device_name, "--device");
  Check("device", usable.ok(), usable.ok() ? device_name : std::string(usable.message()));
  if (!usable.ok()) return 1;
  const torch::Device device(device_name);
  // fp32 means fp32: no TF32 tensor-core rounding in the equivalence checks and fp32 figures.
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  torch::manual_seed(0);
  for (EncoderKind encoder : {EncoderKind::kResNet18, EncoderKind::kResNet34}) {
    if (quick && encoder == EncoderKind::kResNet34) continue;
    for (int level : {0, 1}) {
      CheckForward(device, encoder, level);
      CheckServing(device, encoder, level);
    }
  }
  Unet trained = CheckTraining(device, /*bf16=*/false);
  CheckTraining(device, /*bf16=*/true);
  CheckAutocast(device, trained);
  if (perf) Perf(device, quick, seconds);
  std::printf("checks: %d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
