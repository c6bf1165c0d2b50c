// Experiments through the real segserve binary: a tiny experiment end to end (2 prune levels x
// 2 seeds x 1 epoch x 2 shift levels) whose report has every cell filled, kill -9 in the
// middle (finished children kept, the rest resume), cancel, and bad specs naming the field;
// `segctl experiment report --out` renders the tiny report's Markdown and PNG figures, the
// per-layer Hellinger figure of the models' default susceptibility analysis included.
#include <signal.h>

#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "client/lib/client.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "segserve/v1/datasets.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"
#include "tests/testing/commands.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

class ExperimentTest : public ::testing::Test {
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
  }

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
    EXPECT_EQ(testing::WatchUntilTerminal(*training_, job.job_id(), seconds(600)).state(),
              v1::JOB_STATE_SUCCEEDED);
  }

  // 2 prune levels x 2 seeds, brightness at levels 1 and 5, tiny steps.
  static v1::ExperimentSpec TinySpec(const std::string& dataset, int epochs) {
    v1::ExperimentSpec spec;
    spec.set_dataset(dataset);
    spec.add_encoders(v1::ENCODER_RESNET18);
    spec.add_prune_levels(0);
    spec.add_prune_levels(1);
    spec.add_seeds(1);
    spec.add_seeds(2);
    spec.add_shifts("brightness");
    spec.add_shift_levels(1);
    spec.add_shift_levels(5);
    spec.set_epochs(epochs);
    spec.set_batch_size(4);
    spec.set_learning_rate(3e-3f);
    spec.set_max_steps_per_epoch(2);
    return spec;
  }

  grpc::Status Submit(const v1::ExperimentSpec& spec, v1::Job* job) {
    auto context = client_->NewContext();
    return training_->SubmitExperiment(context.get(), spec, job);
  }

  v1::Job Get(const std::string& id) {
    v1::JobRef ref;
    ref.set_job_id(id);
    v1::Job job;
    auto context = client_->NewContext();
    EXPECT_TRUE(training_->GetJob(context.get(), ref, &job).ok());
    return job;
  }

  v1::Job WaitTerminal(const std::string& id) {
    testing::WatchUntilTerminal(*training_, id, seconds(900));
    return Get(id);
  }

  // Every cell of the tiny grid has n = 2 in-domain and at both shift levels.
  static void ExpectEveryCellFilled(const json& report) {
    ASSERT_EQ(report["cells"].size(), 2u) << report.dump();
    for (const json& cell : report["cells"]) {
      EXPECT_EQ(cell["test_iou"]["n"], 2) << cell.dump();
      EXPECT_EQ(cell["test_iou"]["interval"], true);
      EXPECT_FALSE(cell["test_class_iou"].empty()) << cell.dump();
      for (const char* level : {"1", "5"}) {
        EXPECT_EQ(cell["shift_iou"]["brightness"][level]["n"], 2) << cell.dump();
      }
      EXPECT_EQ(cell["shift_mean"]["brightness"]["n"], 2);
      EXPECT_EQ(cell["shift_mean_all"]["n"], 2);
    }
    ASSERT_EQ(report["paired_vs_l0"].size(), 1u);
    EXPECT_EQ(report["paired_vs_l0"][0]["test_iou"]["pairs"], 2);
    EXPECT_EQ(report["paired_vs_l0"][0]["shift_mean_all"]["pairs"], 2);
    EXPECT_EQ(report["models"].size(), 4u);
    std::set<std::string> questions;
    for (const json& f : report["findings"]) questions.insert(f["question"]);
    EXPECT_EQ(questions, (std::set<std::string>{"RQ1", "RQ2", "RQ3"}));
    // Susceptibility by default at the strongest requested level: every cell, every layer of
    // both seeds' models, and an RQ1 line that ranks the layers.
    EXPECT_EQ(report["version"], 2);
    EXPECT_EQ(report["spec"]["susceptibility"]["targets"], json::array({"brightness:5"}));
    ASSERT_EQ(report["susceptibility"].size(), 2u) << report["susceptibility"].dump();
    for (const json& entry : report["susceptibility"]) {
      EXPECT_EQ(entry["target"], "brightness:5");
      ASSERT_EQ(entry["layers"].size(), 10u) << entry.dump();
      for (const json& layer : entry["layers"]) {
        EXPECT_EQ(layer["hellinger"]["n"], 2) << layer.dump();
        EXPECT_EQ(layer["null"]["n"], 2) << layer.dump();
      }
    }
    for (const json& model : report["models"]) {
      EXPECT_EQ(model["susceptibility"]["brightness:5"].size(), 10u) << model.dump();
    }
    for (const json& f : report["findings"]) {
      if (f["question"] != "RQ1") continue;
      EXPECT_EQ(f["target"], "brightness:5");
      EXPECT_NE(f["text"].get<std::string>().find("L0: most shifted "), std::string::npos)
          << f["text"];
    }
  }

  json ReportOnDisk(const std::string& id) {
    std::ifstream in(dir_.path() + "/runs/" + id + "/report.json");
    std::stringstream text;
    text << in.rdbuf();
    return json::parse(text.str(), nullptr, false);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<v1::Training::Stub> training_;
  std::unique_ptr<v1::Datasets::Stub> datasets_;
};

TEST_F(ExperimentTest, TinyExperimentEndToEndFillsEveryCellOfItsReport) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(MakeDataset("exp", 16));
  v1::Job job;
  grpc::Status status = Submit(TinySpec("exp", 1), &job);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(job.kind(), v1::JOB_KIND_EXPERIMENT);
  EXPECT_EQ(job.child_job_ids_size(), 4);
  EXPECT_EQ(job.experiment_spec().seeds_size(), 2);
  const v1::Job done = WaitTerminal(job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  EXPECT_EQ(done.sweep_size(), 4);
  std::set<uint64_t> seeds;
  for (const auto& child_id : done.child_job_ids()) {
    const v1::Job child = Get(child_id);
    EXPECT_EQ(child.kind(), v1::JOB_KIND_TRAIN);
    EXPECT_EQ(child.state(), v1::JOB_STATE_SUCCEEDED);
    seeds.insert(child.train_spec().seed());
  }
  EXPECT_EQ(seeds, (std::set<uint64_t>{1, 2}));
  const json report = json::parse(done.experiment_report_json(), nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << done.experiment_report_json();
  ExpectEveryCellFilled(report);
  EXPECT_EQ(report["job_id"], job.job_id());
  const json on_disk = ReportOnDisk(job.job_id());
  ASSERT_FALSE(on_disk.is_discarded());
  EXPECT_EQ(on_disk, report);

  // segctl renders it: report.md linking the PNG figures, which decode at their sizes.
  const std::string out = dir_.path() + "/rendered";
  const testing::CommandResult r =
      testing::RunCommand(testing::SegctlBinary() + " --server " + server_->grpc_target() +
                          " experiment report " + job.job_id() + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream md_file(out + "/report.md");
  std::stringstream md;
  md << md_file.rdbuf();
  for (const char* png : {"iou_vs_shift.png", "in_domain_iou.png", "hellinger_per_layer.png"}) {
    EXPECT_NE(md.str().find(std::string("](") + png + ")"), std::string::npos) << png;
    const cv::Mat image = cv::imread(out + "/" + png);
    EXPECT_FALSE(image.empty()) << png;
  }
  EXPECT_EQ(cv::imread(out + "/iou_vs_shift.png").cols, 380 + 180);  // one shift kind
  EXPECT_EQ(md.str().find("not drawn"), std::string::npos) << md.str();
}

TEST_F(ExperimentTest, SigkillMidExperimentKeepsFinishedChildrenAndResumesTheRest) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(MakeDataset("expkill", 16));
  v1::Job job;
  ASSERT_TRUE(Submit(TinySpec("expkill", 2), &job).ok());
  // Kill once the first child has succeeded and before the last one has.
  const std::string first = job.child_job_ids(0);
  const std::string last = job.child_job_ids(3);
  while (Get(first).state() != v1::JOB_STATE_SUCCEEDED)
    std::this_thread::sleep_for(milliseconds(50));
  ASSERT_NE(Get(last).state(), v1::JOB_STATE_SUCCEEDED);
  const v1::Job first_before = Get(first);
  auto killed = server_->Stop(SIGKILL, milliseconds(10000));
  EXPECT_FALSE(killed.ok());

  ASSERT_NO_FATAL_FAILURE(StartServer());
  const v1::Job done = WaitTerminal(job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  const v1::Job first_after = Get(first);
  EXPECT_EQ(first_after.restarts(), 0) << "a finished child ran again";
  EXPECT_EQ(first_after.model_version(), first_before.model_version());
  EXPECT_EQ(first_after.finished_unix_seconds(), first_before.finished_unix_seconds());
  ExpectEveryCellFilled(json::parse(done.experiment_report_json(), nullptr, false));
  EXPECT_FALSE(ReportOnDisk(job.job_id()).is_discarded());
}

TEST_F(ExperimentTest, CancellingTheExperimentCancelsItsChildren) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(MakeDataset("expcancel", 16));
  v1::Job job;
  ASSERT_TRUE(Submit(TinySpec("expcancel", 1000), &job).ok());
  while (Get(job.child_job_ids(0)).state() != v1::JOB_STATE_RUNNING) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  v1::JobRef ref;
  ref.set_job_id(job.job_id());
  v1::Job cancelled;
  auto context = client_->NewContext();
  ASSERT_TRUE(training_->CancelJob(context.get(), ref, &cancelled).ok());
  const v1::Job done = WaitTerminal(job.job_id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_CANCELLED);
  for (const auto& child : done.child_job_ids()) {
    EXPECT_EQ(Get(child).state(), v1::JOB_STATE_CANCELLED) << child;
  }
  EXPECT_TRUE(done.experiment_report_json().empty());
}

TEST_F(ExperimentTest, BadSpecsAreInvalidArgumentNamingTheField) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(MakeDataset("expbad", 8));
  struct Case {
    std::function<void(v1::ExperimentSpec&)> edit;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](v1::ExperimentSpec& s) { s.clear_seeds(); }, "spec.seeds"},
      {[](v1::ExperimentSpec& s) { s.set_shifts(0, "blur"); }, "spec.shifts[0]: unknown shift"},
      {[](v1::ExperimentSpec& s) { s.set_shift_levels(1, 6); }, "spec.shift_levels[1]"},
      {[](v1::ExperimentSpec& s) { s.clear_prune_levels(); }, "grid is empty"},
      {[](v1::ExperimentSpec& s) {
         for (uint64_t seed = 3; seed <= 40; ++seed) s.add_seeds(seed);  // 2 x 40 > 64
       },
       "max_queued_jobs=64"},
      {[](v1::ExperimentSpec& s) { s.set_dataset("nope"); }, "spec.dataset"},
      {[](v1::ExperimentSpec& s) { s.mutable_susceptibility()->add_targets("blur:2"); },
       "spec.susceptibility.targets[0]: unknown shift kind 'blur'"},
      {[](v1::ExperimentSpec& s) { s.mutable_susceptibility()->add_targets("contrast:6"); },
       "spec.susceptibility.targets[0]: the level of 'contrast:6' must be 1..5"},
      {[](v1::ExperimentSpec& s) {
         s.mutable_susceptibility()->add_targets("contrast:2");
         s.mutable_susceptibility()->set_images(1);
       },
       "spec.susceptibility.images: must be 2..1024"},
  };
  for (const Case& c : cases) {
    v1::ExperimentSpec spec = TinySpec("expbad", 1);
    c.edit(spec);
    v1::Job job;
    grpc::Status status = Submit(spec, &job);
    if (c.field == "spec.dataset") {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << c.field;
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    }
    EXPECT_NE(status.error_message().find(c.field), std::string::npos)
        << c.field << ": " << status.error_message();
  }
}

}  // namespace
}  // namespace segserve
