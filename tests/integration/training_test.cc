// Training jobs through the real segserve binary: data-set generation, a tiny training job
// end to end, recovery after SIGKILL, cancellation, queue limits, sweeps, bad specs.
#include <signal.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <thread>

#include "client/lib/client.h"
#include "gtest/gtest.h"
#include "segserve/v1/datasets.grpc.pb.h"
#include "segserve/v1/models.grpc.pb.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"
#include "server/common/cpu_features.h"
#include "tests/testing/commands.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class TrainingTest : public ::testing::Test {
 protected:
  void StartServer(const std::vector<std::string>& flags = {}) {
    auto server = testing::ServerProcess::Start(testing::SegserveBinary(), dir_.path(), flags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ClientOptions options;
    options.target = server_->grpc_target();
    options.timeout = seconds(60);
    client_ = std::move(*client::Client::Create(options));
    training_ = v1::Training::NewStub(client_->channel());
    datasets_ = v1::Datasets::NewStub(client_->channel());
    models_ = v1::Models::NewStub(client_->channel());
  }

  // Generates a small synthetic data set and waits for it.
  void MakeDataset(const std::string& name, int n) {
    v1::GenerateDatasetRequest request;
    request.set_name(name);
    request.set_n(n);
    request.set_size(64);
    request.set_seed(3);
    v1::Job job;
    auto context = client_->NewContext();
    grpc::Status status = datasets_->Generate(context.get(), request, &job);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(WaitTerminal(job.job_id()).state(), v1::JOB_STATE_SUCCEEDED);
  }

  static v1::TrainSpec TinySpec(const std::string& dataset, int epochs) {
    return testing::TinyTrainSpec(dataset, epochs);
  }

  grpc::Status Submit(const v1::TrainSpec& spec, v1::Job* job) {
    auto context = client_->NewContext();
    return training_->SubmitTrain(context.get(), spec, job);
  }

  v1::Job Get(const std::string& id) {
    v1::JobRef ref;
    ref.set_job_id(id);
    v1::Job job;
    auto context = client_->NewContext();
    EXPECT_TRUE(training_->GetJob(context.get(), ref, &job).ok());
    return job;
  }

  // Watches until the terminal event; `on_event` sees every event.
  v1::Job WaitTerminal(const std::string& id,
                       const std::function<void(const v1::JobEvent&)>& on_event = nullptr) {
    return testing::WatchUntilTerminal(*training_, id, seconds(600), on_event);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<v1::Training::Stub> training_;
  std::unique_ptr<v1::Datasets::Stub> datasets_;
  std::unique_ptr<v1::Models::Stub> models_;
};

TEST_F(TrainingTest, DataSetJobsReportImagesWrittenOfN) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::GenerateDatasetRequest request;
  request.set_name("progress");
  request.set_n(24);
  request.set_size(64);
  v1::Job job;
  auto context = client_->NewContext();
  ASSERT_TRUE(datasets_->Generate(context.get(), request, &job).ok());
  int64_t most_written = -1;
  const v1::Job done = WaitTerminal(job.job_id(), [&](const v1::JobEvent& e) {
    const auto& p = e.job().progress();
    if (p.steps() > 0) {
      EXPECT_EQ(p.steps(), 24);
      EXPECT_GE(p.step(), most_written);  // never goes backwards
      most_written = p.step();
    }
  });
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.progress().step(), 24);
  EXPECT_EQ(done.progress().steps(), 24);
  EXPECT_DOUBLE_EQ(done.progress().fraction(), 1.0);
  EXPECT_GT(done.progress().images_per_second(), 0);
}

TEST_F(TrainingTest, TinyJobRunsEndToEndAndItsModelServes) {
  // --precision=auto with any drop allowed: the model, trained with bf16_check, serves in
  // bf16 wherever the CPU has bf16 units, and says so.
  ASSERT_NO_FATAL_FAILURE(StartServer({"--precision=auto", "--bf16_max_iou_drop=1"}));
  ASSERT_NO_FATAL_FAILURE(MakeDataset("tiny", 16));
  auto spec = TinySpec("tiny", 2);
  spec.set_bf16_check(true);
  spec.set_model_name("tiny-l1");
  spec.add_set_aliases("l1-pruned");
  spec.mutable_cross_domain()->Add()->mutable_dataset()->mutable_shift()->set_kind(
      v1::Shift::KIND_BRIGHTNESS);
  spec.mutable_cross_domain(0)->mutable_dataset()->mutable_shift()->set_level(4);
  spec.mutable_susceptibility()->add_targets("contrast:5");
  spec.mutable_susceptibility()->set_images(4);
  v1::Job job;
  grpc::Status status = Submit(spec, &job);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  std::set<int> states;
  const v1::Job done = WaitTerminal(job.job_id(), [&](const v1::JobEvent& e) {
    states.insert(e.job().state());
  });
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  EXPECT_TRUE(states.count(v1::JOB_STATE_RUNNING));
  EXPECT_EQ(done.model_name(), "tiny-l1");
  EXPECT_EQ(done.model_version(), 1);
  EXPECT_TRUE(done.metrics().count("test_iou"));
  EXPECT_TRUE(done.metrics().count("cross_domain_iou/brightness:4"));
  ASSERT_TRUE(done.metrics().count("test_iou_bf16"));
  EXPECT_GE(done.metrics().at("test_iou_bf16"), 0.0);
  EXPECT_TRUE(done.train_spec().bf16_check());
  // The model's own per-layer susceptibility, asked for in the spec, comes back in the job.
  ASSERT_EQ(done.susceptibility_size(), 1);
  const v1::SusceptibilityReport& susceptibility = done.susceptibility().at("contrast:5");
  EXPECT_GE(susceptibility.source_images(), 2);  // the test split's first images, at most 4
  EXPECT_LE(susceptibility.source_images(), 4);
  EXPECT_EQ(susceptibility.target_images(), susceptibility.source_images());
  ASSERT_EQ(susceptibility.models_size(), 1);
  EXPECT_EQ(susceptibility.models(0).model_name(), "tiny-l1");
  EXPECT_EQ(susceptibility.models(0).model_version(), 1);
  ASSERT_EQ(susceptibility.models(0).layers_size(), 10);
  EXPECT_EQ(susceptibility.models(0).layers(0).layer(), "encoder.stem");
  EXPECT_GT(susceptibility.models(0).layers(0).mean(), 0.0);
  const std::string precision = common::CpuHasFastBf16() ? "bf16" : "fp32";

  v1::ListModelsResponse models;
  auto context = client_->NewContext();
  ASSERT_TRUE(models_->List(context.get(), v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).state(), v1::LOAD_STATE_LOADED);
  EXPECT_TRUE(models.models(0).has_reference_stats());
  EXPECT_TRUE(models.models(0).metrics().count("val_iou"));
  EXPECT_TRUE(models.models(0).metrics().count("test_iou_bf16"));
  EXPECT_EQ(models.models(0).precision(), precision);

  v1::SegmentRequest request;
  request.mutable_model()->set_name("l1-pruned");
  auto* raw = request.mutable_image()->mutable_raw();
  raw->set_height(64);
  raw->set_width(64);
  raw->set_channels(3);
  raw->set_dtype(v1::DTYPE_UINT8);
  raw->set_data(std::string(64 * 64 * 3, '\x80'));
  v1::SegmentResponse response;
  auto segment_context = client_->NewContext();
  status = v1::Segmentation::NewStub(client_->channel())
               ->Segment(segment_context.get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_name(), "tiny-l1");
  EXPECT_EQ(response.precision(), precision);
}

// The README's quick start on an empty data dir (shrunk by flags): a data set, then a quick
// experiment (L0 and L1 x seeds 1 and 2, graded shifts, bf16 check), its report, and the
// aliases baseline / l1-pruned on the best seed of each level by validation IoU.
TEST_F(TrainingTest, BootstrapRunsAQuickExperimentAndAliasesTheBestSeeds) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--bootstrap=true", "--bootstrap_images=16", "--bootstrap_size=64",
                   "--bootstrap_epochs=1", "--bootstrap_max_steps=1"}));
  std::string experiment_id;
  const auto give_up = std::chrono::steady_clock::now() + seconds(120);
  while (experiment_id.empty() && std::chrono::steady_clock::now() < give_up) {
    v1::ListJobsRequest request;
    request.set_kind(v1::JOB_KIND_EXPERIMENT);
    v1::ListJobsResponse jobs;
    auto context = client_->NewContext();
    ASSERT_TRUE(training_->ListJobs(context.get(), request, &jobs).ok());
    if (jobs.jobs_size() > 0) experiment_id = jobs.jobs(0).job_id();
    if (experiment_id.empty()) std::this_thread::sleep_for(milliseconds(200));
  }
  ASSERT_FALSE(experiment_id.empty()) << "no quick-start experiment was submitted";
  const v1::Job done = WaitTerminal(experiment_id);
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  EXPECT_EQ(done.child_job_ids_size(), 4);  // L0, L1 x seeds 1, 2
  EXPECT_EQ(done.experiment_spec().shifts_size(), 3);
  EXPECT_EQ(done.experiment_spec().shift_levels_size(), 5);
  EXPECT_TRUE(done.experiment_spec().bf16_check());
  EXPECT_FALSE(done.experiment_report_json().empty());

  // The best seed per level by validation IoU, from the children themselves.
  std::map<int, std::pair<double, std::string>> best;
  for (const std::string& id : done.child_job_ids()) {
    const v1::Job child = Get(id);
    ASSERT_EQ(child.state(), v1::JOB_STATE_SUCCEEDED) << child.reason();
    const int level = child.train_spec().prune_levels(0);
    const double val = child.metrics().at("val_iou");
    if (!best.count(level) || val > best[level].first) best[level] = {val, child.model_name()};
  }
  // The bootstrap thread points the aliases just after the experiment ends.
  std::map<std::string, std::string> alias_to_model;
  const auto aliases_by = std::chrono::steady_clock::now() + seconds(30);
  while (std::chrono::steady_clock::now() < aliases_by) {
    alias_to_model.clear();
    v1::ListModelsResponse models;
    auto context = client_->NewContext();
    ASSERT_TRUE(models_->List(context.get(), v1::ListModelsRequest(), &models).ok());
    for (const auto& m : models.models()) {
      for (const auto& alias : m.aliases()) alias_to_model[alias] = m.name();
    }
    if (alias_to_model["baseline"] == best[0].second &&
        alias_to_model["l1-pruned"] == best[1].second) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_EQ(alias_to_model["baseline"], best[0].second);
  EXPECT_EQ(alias_to_model["l1-pruned"], best[1].second);
  std::string marker;
  for (int i = 0; i < 50 && marker.find("done") == std::string::npos; ++i) {
    std::ifstream in(dir_.path() + "/bootstrap.json");
    marker.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_NE(marker.find("\"done\""), std::string::npos) << marker;
  EXPECT_NE(marker.find(experiment_id), std::string::npos) << marker;
}

TEST_F(TrainingTest, SigkillDuringTrainingLosesNoJobAndResumesFromTheLastEpoch) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(MakeDataset("resume", 32));
  v1::Job job;
  ASSERT_TRUE(Submit(TinySpec("resume", 4), &job).ok());
  // Wait until the second epoch is under way (the first is checkpointed), then kill -9.
  grpc::ClientContext context;
  v1::JobRef ref;
  ref.set_job_id(job.job_id());
  auto reader = training_->WatchJob(&context, ref);
  v1::JobEvent event;
  while (reader->Read(&event) && event.job().progress().epoch() < 2) {
  }
  ASSERT_GE(event.job().progress().epoch(), 2);
  auto killed = server_->Stop(SIGKILL, milliseconds(10000));
  EXPECT_FALSE(killed.ok());  // killed by a signal, not an exit code
  context.TryCancel();
  reader->Finish();

  ASSERT_NO_FATAL_FAILURE(StartServer());
  // The first event is a snapshot (possibly progress persisted before the kill); after it,
  // every progress report comes from the resumed run.
  int first_epoch_after_restart = 0;
  int events = 0;
  const v1::Job done = WaitTerminal(job.job_id(), [&](const v1::JobEvent& e) {
    if (events++ > 0 && first_epoch_after_restart == 0 &&
        e.job().state() == v1::JOB_STATE_RUNNING && e.job().progress().epoch() > 0) {
      first_epoch_after_restart = e.job().progress().epoch();
    }
  });
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  EXPECT_EQ(done.restarts(), 1);
  EXPECT_GE(first_epoch_after_restart, 2) << "training restarted from scratch";
}

TEST_F(TrainingTest, CancelQueuedAndRunningJobsAndHonourTheQueueLimit) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_queued_jobs=1"}));
  ASSERT_NO_FATAL_FAILURE(MakeDataset("cancel", 16));
  v1::Job running, queued, refused;
  ASSERT_TRUE(Submit(TinySpec("cancel", 1000), &running).ok());
  while (Get(running.job_id()).state() != v1::JOB_STATE_RUNNING) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_TRUE(Submit(TinySpec("cancel", 1000), &queued).ok());
  grpc::Status status = Submit(TinySpec("cancel", 1000), &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("max_queued_jobs"), std::string::npos);

  v1::JobRef ref;
  ref.set_job_id(queued.job_id());
  v1::Job cancelled;
  auto context = client_->NewContext();
  ASSERT_TRUE(training_->CancelJob(context.get(), ref, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(cancelled.started_unix_seconds(), 0);

  ref.set_job_id(running.job_id());
  auto cancel_context = client_->NewContext();
  ASSERT_TRUE(training_->CancelJob(cancel_context.get(), ref, &cancelled).ok());
  EXPECT_EQ(WaitTerminal(running.job_id()).state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(Get(queued.job_id()).started_unix_seconds(), 0);
}

TEST_F(TrainingTest, SweepRunsOneChildPerLevelAndReportsATable) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(MakeDataset("sweep", 16));
  auto spec = TinySpec("sweep", 1);
  spec.clear_prune_levels();
  spec.add_prune_levels(0);
  spec.add_prune_levels(1);
  spec.set_max_steps_per_epoch(2);
  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  EXPECT_EQ(job.kind(), v1::JOB_KIND_SWEEP);
  EXPECT_EQ(job.child_job_ids_size(), 2);
  WaitTerminal(job.job_id());
  const v1::Job done = Get(job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  ASSERT_EQ(done.sweep_size(), 2);
  std::set<int> levels;
  for (const auto& row : done.sweep()) {
    levels.insert(row.prune_level());
    EXPECT_EQ(row.state(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_FALSE(row.model_name().empty());
  }
  EXPECT_EQ(levels, (std::set<int>{0, 1}));
}

TEST_F(TrainingTest, BadSpecsNameTheField) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(MakeDataset("bad", 8));
  struct Case {
    const char* what;
    v1::TrainSpec spec;
    grpc::StatusCode code;
    const char* field;
  };
  std::vector<Case> cases;
  cases.push_back({"unknown data set", TinySpec("nope", 1), grpc::StatusCode::NOT_FOUND,
                   "spec.dataset"});
  {
    auto spec = TinySpec("bad", 1);
    spec.set_prune_levels(0, 7);
    cases.push_back({"prune level 7", spec, grpc::StatusCode::INVALID_ARGUMENT,
                     "spec.prune_level"});
  }
  cases.push_back({"epochs 0", TinySpec("bad", 0), grpc::StatusCode::INVALID_ARGUMENT,
                   "spec.epochs"});
  {
    auto spec = TinySpec("bad", 1);
    spec.set_pretrained_encoder("../../../etc/passwd");
    cases.push_back({"escaping path", spec, grpc::StatusCode::INVALID_ARGUMENT,
                     "spec.pretrained_encoder"});
  }
  cases.push_back({"escaping data set", TinySpec("../bad", 1), grpc::StatusCode::INVALID_ARGUMENT,
                   "spec.dataset"});
  for (const auto& c : cases) {
    v1::Job job;
    grpc::Status status = Submit(c.spec, &job);
    EXPECT_EQ(status.error_code(), c.code) << c.what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.field), std::string::npos)
        << c.what << ": " << status.error_message();
  }
}

}  // namespace
}  // namespace segserve
