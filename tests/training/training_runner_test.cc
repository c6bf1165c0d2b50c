// File: tests/training/training_runner_test.cc — TrainingRunner end to end on a tiny synthetic
// data set (64x64, 24 images): learning, checkpoints, resume, cancel, determinism,
// registration. The JobContext is a recording test double (the scheduler seam).
#include "server/training/training_runner.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <map>

#include "nlohmann/json.hpp"
#include "server/data/dataset.h"
#include "server/data/synthetic.h"
#include "server/inference/executor.h"
#include "server/inference/torch_batch_runner.h"
#include "server/metrics/metrics.h"
#include "server/model/tensor_memory.h"
#include "server/model/checkpoint.h"
#include "server/registry/model_store.h"
#include "server/training/train_spec.h"

namespace segserve::training {
namespace {

using nlohmann::json;

class RecordingContext : public scheduler::JobContext {
 public:
  explicit RecordingContext(std::string run_dir) : run_dir_(std::move(run_dir)) {}
  bool cancelled() const override { return cancel_when && cancel_when(*this); }
  void ReportProgress(const scheduler::JobProgress& p) override { progress.push_back(p); }
  absl::Status MarkEpochCompleted(int epoch) override {
    // The checkpoint of the epoch must be durable before the scheduler hears of it.
    auto info = model::ReadCheckpointInfo(run_dir_ + "/latest.ckpt");
    EXPECT_TRUE(info.ok()) << info.status();
    if (info.ok()) {
      EXPECT_EQ(info->metadata["epoch"], epoch);
    }
    marked.push_back(epoch);
    return absl::OkStatus();
  }
  void AddTrainingImages(int64_t n) override { images += n; }
  void AddTrainingStepTime(double step, double wait) override {
    EXPECT_GE(wait, 0);
    EXPECT_LE(wait, step);
    step_seconds += step;
    ++steps;
  }
  void SetResult(std::string r) override { result = json::parse(r); }

  std::function<bool(const RecordingContext&)> cancel_when;
  std::vector<scheduler::JobProgress> progress;
  std::vector<int> marked;
  int64_t images = 0;
  double step_seconds = 0;
  int64_t steps = 0;
  json result;

 private:
  std::string run_dir_;
};

class TrainingRunnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // As segserve does (server.cc): tensors from the retained heap.
    model::InstallTensorAllocator();
    char tmpl[] = "/tmp/segserve_training_test_XXXXXX";
    data_dir_ = new std::string(mkdtemp(tmpl));
    data::SyntheticDatasetOptions o;
    o.count = 24;
    o.seed = 7;
    o.name = "synth";
    o.sample.size = 64;
    o.sample.cell_radius = 7;
    ASSERT_TRUE(data::GenerateSyntheticDataset(*data_dir_ + "/datasets/synth", o).ok());
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*data_dir_);
    delete data_dir_;
  }

  static TrainSpec SmallSpec(int epochs) {
    TrainSpec s;
    s.dataset = "synth";
    s.encoder = "resnet18";
    s.prune_level = 1;
    s.epochs = epochs;
    s.batch_size = 4;
    s.learning_rate = 3e-3;
    s.max_steps_per_epoch = 4;
    return s;
  }
  static scheduler::Job MakeJob(const std::string& id, const TrainSpec& spec, int last = 0) {
    scheduler::Job job;
    job.id = id;
    job.spec_json = TrainSpecToJsonString(spec);
    job.last_completed_epoch = last;
    return job;
  }
  TrainingOptions Options() {
    TrainingOptions o;
    o.data_dir = *data_dir_;
    o.intra_op_threads = 2;
    // NCHW is ~2x faster than channels-last at 64x64; the cancel test covers channels-last.
    o.channels_last = false;
    o.on_registered = [this](const registry::StoredVersion& v) { registered_.push_back(v); };
    return o;
  }
  static std::string RunDir(const std::string& id) { return *data_dir_ + "/runs/" + id; }
  // Final running loss of each epoch (the progress report that closes it).
  static std::map<int, double> EpochLosses(const RecordingContext& ctx) {
    std::map<int, double> out;
    for (const auto& p : ctx.progress) {
      if (p.step == p.steps && p.steps > 0) out[p.epoch] = p.loss;
    }
    return out;
  }

  static std::string* data_dir_;
  std::vector<registry::StoredVersion> registered_;
};
std::string* TrainingRunnerTest::data_dir_ = nullptr;

TEST_F(TrainingRunnerTest, LearnsCheckpointsEachEpochAndRegisters) {
  TrainSpec spec = SmallSpec(8);
  spec.model_name = "tiny";
  spec.set_aliases = {"l1-pruned"};
  spec.cross_domain = {{"", "", "", "brightness:4"}};
  TrainingRunner runner(Options());
  RecordingContext ctx(RunDir("learn"));
  ASSERT_TRUE(runner.Run(MakeJob("learn", spec), ctx).ok());

  EXPECT_EQ(ctx.marked, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(ctx.images, 8 * 4 * 4);
  EXPECT_EQ(ctx.steps, 8 * 4);
  EXPECT_GT(ctx.step_seconds, 0);
  auto losses = EpochLosses(ctx);
  ASSERT_EQ(losses.size(), 8u);
  EXPECT_LT(losses[8], 0.8 * losses[1]) << losses[1] << " -> " << losses[8];
  // Chance level: predicting everything background gives foreground IoU 0.
  const double val_iou = ctx.result["val_iou"];
  EXPECT_GT(val_iou, 0.3);
  EXPECT_TRUE(std::filesystem::exists(RunDir("learn") + "/best.ckpt"));
  EXPECT_TRUE(std::filesystem::exists(RunDir("learn") + "/latest.optim"));

  // Registered with metrics, reference statistics and the alias.
  ASSERT_EQ(registered_.size(), 1u);
  EXPECT_EQ(ctx.result["model_name"], "tiny");
  EXPECT_EQ(ctx.result["model_version"], registered_[0].version);
  EXPECT_EQ(ctx.result["epochs_run"], 8);
  auto store = registry::ModelStore::Open(*data_dir_);
  ASSERT_TRUE(store.ok());
  auto stored = (*store)->Get("tiny", 0);
  ASSERT_TRUE(stored.ok()) << stored.status();
  const json& meta = stored->metadata;
  EXPECT_DOUBLE_EQ(meta["metrics"]["val_iou"].get<double>(), val_iou);
  EXPECT_TRUE(meta["metrics"].contains("test_iou"));
  EXPECT_TRUE(meta["metrics"].contains("cross_domain_iou/brightness:4"));
  EXPECT_TRUE(ctx.result["cross_domain_iou"].contains("brightness:4"));
  // The finish's phases with their image counts: the test split and one shifted copy of it.
  const json& timing = ctx.result["finish_timing"];
  const auto ds = data::OpenDataset(*data_dir_ + "/datasets/synth");
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(timing["test_images"], ds->test.size()) << timing.dump();
  EXPECT_EQ(timing["cross_domain_images"], ds->test.size());
  EXPECT_GT(timing["test_seconds"].get<double>(), 0);
  EXPECT_GT(timing["cross_domain_seconds"].get<double>(), 0);
  EXPECT_GT(timing["reference_seconds"].get<double>(), 0);
  EXPECT_EQ(timing["susceptibility_seconds"].get<double>(), 0);  // no targets asked
  EXPECT_EQ(meta["source_job_id"], "learn");
  EXPECT_EQ(meta["class_names"], json({"background", "red_blood_cell", "parasite"}));
  EXPECT_EQ(meta["train_spec"]["model_name"], "tiny");
  // Each epoch's history says how long its steps took and how much of it was loader wait.
  ASSERT_EQ(meta["history"].size(), 8u);
  double history_seconds = 0;
  for (const json& epoch : meta["history"]) {
    EXPECT_GE(epoch["loader_wait_seconds"].get<double>(), 0) << epoch.dump();
    EXPECT_LE(epoch["loader_wait_seconds"].get<double>(), epoch["train_seconds"].get<double>());
    EXPECT_GT(epoch["val_seconds"].get<double>(), 0);
    history_seconds += epoch["train_seconds"].get<double>();
  }
  EXPECT_NEAR(history_seconds, ctx.step_seconds, 1e-6);
  EXPECT_FALSE(meta["metrics"].contains("test_iou_bf16"));  // no bf16_check asked
  const json& ref = meta["reference_stats"];
  ASSERT_EQ(ref["layers"].size(), 10u);
  EXPECT_EQ(ref["layers"][0]["name"], "encoder.stem");
  EXPECT_EQ(ref["layers"][0]["channels"], 64);
  EXPECT_EQ(ref["layers"][0]["hist"].size(), 64u);
  EXPECT_EQ(ref["layers"][0]["hist"][0].size(), 32u);
  EXPECT_GT(ref["images"].get<int>(), 0);
  EXPECT_EQ(stored->config.mean.size(), 3u);
  EXPECT_NE(stored->config.mean[0], 0.485f);  // the data set's statistics, not ImageNet's
  EXPECT_EQ(stored->config.skip_prune_level, 1);
  EXPECT_EQ((*store)->Aliases()["l1-pruned"].name, "tiny");

  // A re-run of the finished job (e.g. after a crash) does not register twice.
  RecordingContext again(RunDir("learn"));
  scheduler::Job job = MakeJob("learn", spec, 8);
  ASSERT_TRUE(runner.Run(job, again).ok());
  EXPECT_EQ(registered_.size(), 1u);
  EXPECT_EQ(again.result["model_version"], ctx.result["model_version"]);
}

// bf16 autocast: the same tiny problem still learns, the weights and the checkpoints stay
// fp32, and the losses differ from fp32 training (the forward really ran in bf16).
TEST_F(TrainingRunnerTest, Bf16MixedPrecisionLearnsWithFp32Checkpoints) {
  TrainSpec fp32 = SmallSpec(3);
  fp32.model_name = "precision-fp32";
  TrainSpec bf16 = fp32;
  bf16.model_name = "precision-bf16";
  bf16.precision = "bf16";
  bf16.bf16_check = true;  // evaluated in place (no serving scheduler here)
  TrainingRunner runner(Options());
  RecordingContext a(RunDir("fp32")), b(RunDir("bf16"));
  ASSERT_TRUE(runner.Run(MakeJob("fp32", fp32), a).ok());
  ASSERT_TRUE(runner.Run(MakeJob("bf16", bf16), b).ok());
  auto la = EpochLosses(a), lb = EpochLosses(b);
  ASSERT_EQ(lb.size(), 3u);
  EXPECT_LT(lb[3], lb[1]) << lb[1] << " -> " << lb[3];
  EXPECT_NE(la[1], lb[1]);
  EXPECT_NEAR(la[1], lb[1], 0.1 * la[1]);
  auto ckpt = model::LoadCheckpoint(RunDir("bf16") + "/latest.ckpt");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  for (const auto& p : ckpt->model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat32);
  EXPECT_EQ(ckpt->info.metadata["train_spec"]["precision"], "bf16");
  // The bf16 serving check: the same test split served in bf16, next to fp32.
  ASSERT_TRUE(b.result.contains("test_iou_bf16")) << b.result.dump();
  EXPECT_FALSE(a.result.contains("test_iou_bf16"));
  EXPECT_NEAR(b.result["test_iou_bf16"].get<double>(), b.result["test_iou"].get<double>(), 0.1);
}

TEST_F(TrainingRunnerTest, Fp16OnACpuFailsBeforeTraining) {
  TrainSpec spec = SmallSpec(1);
  spec.precision = "fp16";  // device left to the server default: cpu here
  TrainingRunner runner(Options());
  RecordingContext ctx(RunDir("fp16"));
  absl::Status s = runner.Run(MakeJob("fp16", spec), ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("spec.precision: fp16 needs a CUDA device"), std::string::npos) << s;
  EXPECT_TRUE(ctx.progress.empty());
}

TEST_F(TrainingRunnerTest, ResumeContinuesAfterLastCompletedEpochWithSameLosses) {
  TrainingRunner runner(Options());
  TrainSpec spec = SmallSpec(2);
  spec.max_steps_per_epoch = 2;
  // Uninterrupted (stopped after its last training step: only its losses are needed).
  RecordingContext full(RunDir("full"));
  full.cancel_when = [](const RecordingContext& c) {
    return !c.progress.empty() && c.progress.back().epoch == 2 && c.progress.back().step == 2;
  };
  ASSERT_EQ(runner.Run(MakeJob("full", spec), full).code(), absl::StatusCode::kCancelled);
  // Interrupted in epoch 2 (as a scheduler shutdown does), then re-run after epoch 1.
  RecordingContext first(RunDir("split"));
  first.cancel_when = [](const RecordingContext& c) {
    return !c.progress.empty() && c.progress.back().epoch == 2 && c.progress.back().step >= 1;
  };
  ASSERT_EQ(runner.Run(MakeJob("split", spec), first).code(), absl::StatusCode::kCancelled);
  ASSERT_EQ(first.marked, std::vector<int>{1});
  RecordingContext second(RunDir("split"));
  ASSERT_TRUE(runner.Run(MakeJob("split", spec, 1), second).ok());

  EXPECT_EQ(second.marked, std::vector<int>{2});
  for (const auto& p : second.progress) EXPECT_EQ(p.epoch, 2);
  EXPECT_EQ(second.images, 2 * 4);
  EXPECT_EQ(second.result["epochs_run"], 2);
  // Weights, BatchNorm statistics and Adam state carried over: epoch 2 matches the
  // uninterrupted run.
  EXPECT_NEAR(EpochLosses(second)[2], EpochLosses(full)[2], 1e-6);

  // More epochs on a finished run (a re-submitted spec with a larger budget) does only those.
  RecordingContext third(RunDir("split"));
  ASSERT_TRUE(runner.Run(MakeJob("split", SmallSpec(3), 2), third).ok());
  EXPECT_EQ(third.marked, std::vector<int>{3});
  EXPECT_EQ(third.result["epochs_run"], 3);
}

TEST_F(TrainingRunnerTest, SameSeedGivesSameLosses) {
  TrainingRunner runner(Options());
  TrainSpec spec = SmallSpec(1);
  spec.max_steps_per_epoch = 3;
  // Each run stops after its third step (losses are all this test needs).
  auto run = [&](const std::string& id, uint64_t seed) {
    RecordingContext ctx(RunDir(id));
    ctx.cancel_when = [](const RecordingContext& c) {
      return !c.progress.empty() && c.progress.back().step == 3;
    };
    spec.seed = seed;
    EXPECT_EQ(runner.Run(MakeJob(id, spec), ctx).code(), absl::StatusCode::kCancelled);
    std::vector<double> losses;
    for (const auto& p : ctx.progress) losses.push_back(p.loss);
    return losses;
  };
  const std::vector<double> a = run("det-a", 1), b = run("det-b", 1), c = run("det-c", 2);
  EXPECT_EQ(a.size(), 4u);  // step 0 and three steps
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST_F(TrainingRunnerTest, CancelStopsAtTheNextStepAndKeepsCheckpoint) {
  RecordingContext ctx(RunDir("cancel"));
  // Cancel as soon as the second epoch has done one step.
  ctx.cancel_when = [](const RecordingContext& c) {
    return !c.progress.empty() && c.progress.back().epoch == 2 && c.progress.back().step >= 1;
  };
  TrainSpec spec = SmallSpec(5);
  spec.max_steps_per_epoch = 2;
  TrainingOptions options = Options();
  options.channels_last = true;  // the other layout, covered here
  TrainingRunner cl_runner(options);
  absl::Status st = cl_runner.Run(MakeJob("cancel", spec), ctx);
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled) << st;
  EXPECT_EQ(ctx.marked, std::vector<int>{1});
  EXPECT_EQ(ctx.images, 2 * 4 + 4);  // epoch 1 and one step of epoch 2
  auto info = model::ReadCheckpointInfo(RunDir("cancel") + "/latest.ckpt");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->metadata["epoch"], 1);
  EXPECT_TRUE(ctx.result.is_null());
}

TEST_F(TrainingRunnerTest, BadSpecFailsBeforeTraining) {
  TrainingRunner runner(Options());
  RecordingContext ctx(RunDir("bad"));
  TrainSpec spec = SmallSpec(1);
  spec.prune_level = 7;
  absl::Status st = runner.Run(MakeJob("bad", spec), ctx);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "spec.prune_level: must be 0..4, got 7");
  spec = SmallSpec(1);
  spec.dataset = "missing";
  EXPECT_EQ(runner.Run(MakeJob("bad", spec), ctx).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(ctx.progress.empty());
}

TEST_F(TrainingRunnerTest, ResumeWithoutCheckpointIsDataLoss) {
  TrainingRunner runner(Options());
  RecordingContext ctx(RunDir("lost"));
  EXPECT_EQ(runner.Run(MakeJob("lost", SmallSpec(3), 2), ctx).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace segserve::training

namespace segserve::training {
namespace {

// The production runner, recording which models' batches it ran (device thread only; read
// once the job is over).
class RecordingTorchRunner : public inference::BatchRunner {
 public:
  absl::StatusOr<inference::BatchOutput> Run(const inference::BatchInput& input) override {
    images[input.model->stored.name] += input.batch;
    return torch_.Run(input);
  }
  std::map<std::string, int> images;

 private:
  inference::TorchBatchRunner torch_;
};

// With the serving core's scheduler, every evaluation forward pass (validation after each
// epoch, test and cross-domain sets, susceptibility) runs on the executor, and the IoUs are those of the
// in-place evaluation (same seed, same weights; BatchNorm folded changes only rounding).
TEST_F(TrainingRunnerTest, EvaluationRunsOnTheServingExecutorWithTheSameIoUs) {
  TrainSpec spec = SmallSpec(2);
  spec.cross_domain = {{"", "", "", "brightness:2"}};
  spec.seed = 11;
  spec.bf16_check = true;
  spec.susceptibility = {{"brightness:4"}, 8};
  TrainingRunner in_place(Options());
  RecordingContext a(RunDir("eval-in-place"));
  ASSERT_TRUE(in_place.Run(MakeJob("eval-in-place", spec), a).ok());

  metrics::Metrics metrics;
  inference::BatchScheduler scheduler({}, metrics);
  RecordingTorchRunner device;
  inference::Executor executor("cpu", scheduler, device, metrics);
  TrainingOptions options = Options();
  options.eval_scheduler = &scheduler;
  options.eval_device = "cpu";
  TrainingRunner shared(options);
  RecordingContext b(RunDir("eval-executor"));
  ASSERT_TRUE(shared.Run(MakeJob("eval-executor", spec), b).ok());
  scheduler.Shutdown();
  executor.Join();

  // Two validations, the test split and the shifted test split went through the executor.
  ASSERT_EQ(device.images.size(), 1u);
  EXPECT_GT(device.images["training-evaluation"], 0);
  for (const char* key : {"val_iou", "test_iou"}) {
    EXPECT_NEAR(b.result[key].get<double>(), a.result[key].get<double>(), 2e-3) << key;
  }
  EXPECT_NEAR(b.result["cross_domain_iou"]["brightness:2"].get<double>(),
              a.result["cross_domain_iou"]["brightness:2"].get<double>(), 2e-3);
  // The bf16 check runs on the executor too, and agrees with the in-place bf16 pass.
  EXPECT_NEAR(b.result["test_iou_bf16"].get<double>(), a.result["test_iou_bf16"].get<double>(),
              2e-3);
  // The per-layer susceptibility (the Analyze driver on the same snapshot) runs on the
  // executor too: every tapped layer, with its null, close to the in-place values.
  const json& sa = a.result["susceptibility"]["brightness:4"];
  const json& sb = b.result["susceptibility"]["brightness:4"];
  ASSERT_EQ(sa["layers"].size(), 10u) << a.result.dump();
  ASSERT_EQ(sb["layers"].size(), 10u) << b.result.dump();
  EXPECT_FALSE(sa.contains("model"));
  EXPECT_GE(sa["source_images"].get<int>(), 2);
  EXPECT_LE(sa["source_images"].get<int>(), 8);
  EXPECT_EQ(sa["source_images"], sa["target_images"]);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(sb["layers"][i]["layer"], sa["layers"][i]["layer"]);
    EXPECT_TRUE(sa["layers"][i]["null_mean"].is_number()) << sa["layers"][i].dump();
    EXPECT_NEAR(sb["layers"][i]["mean"].get<double>(), sa["layers"][i]["mean"].get<double>(),
                0.05)
        << sa["layers"][i]["layer"];
  }
}

}  // namespace
}  // namespace segserve::training
