// Lifecycle of stored things against the real segserve binary (issue 19): Models.Delete
// refused while aliased and served until then, a loaded version deleted while Segment calls
// are in flight, Datasets.Delete refused while a job uses the set, run-directory retention
// after success and cancel, Training.PurgeJobs, and the data-dir gauges over a real /metrics
// scrape. Uses the fault suite's fixture (a server over a temp data dir with typed stubs).
#include <atomic>
#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/lib/lifecycle.h"
#include "tests/integration/fault_harness.h"
#include "tests/testing/model_fixture.h"

namespace segserve::fault {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

class DeleteTest : public FaultTest {
 protected:
  // Imports `name` (one new version) and returns its version.
  int64_t ImportVersion(const std::string& name, bool load, uint64_t seed = 7) {
    auto state_dict = testing::TestModelStateDict(SmallConfig(), seed);
    EXPECT_TRUE(state_dict.ok()) << state_dict.status();
    v1::ModelInfo info;
    grpc::Status status = Import(name, *state_dict, load, &info);
    EXPECT_TRUE(status.ok()) << StatusText(status);
    return info.version();
  }
  grpc::Status SetAlias(const std::string& alias, const std::string& name, int64_t version) {
    v1::SetAliasRequest request;
    request.set_alias(alias);
    request.mutable_model()->set_name(name);
    request.mutable_model()->set_version(version);
    v1::SetAliasResponse response;
    auto context = client_->NewContext();
    return models_->SetAlias(context.get(), request, &response);
  }
  bool HasCheckpoints(const std::string& dir) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.find(".ckpt") != std::string::npos || name.find(".optim") != std::string::npos) {
        return true;
      }
    }
    return false;
  }
  double Bytes(const std::string& kind) {
    return Metric(absl::StrCat("segserve_data_dir_bytes{kind=\"", kind, "\"}"));
  }
};

TEST_F(DeleteTest, AModelIsRefusedWhileAliasedNamingTheAliasAndDeletedAfter) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ImportVersion("m", false, 1);
  ImportVersion("m", false, 2);
  ASSERT_TRUE(SetAlias("baseline", "m", 1).ok());
  ASSERT_TRUE(SetAlias("l1-pruned", "m", 0).ok());

  auto refused = client::DeleteModel(*client_, "m", 1);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("'baseline'"), std::string::npos) << refused.status();
  refused = client::DeleteModel(*client_, "m", 2);  // the newest, aliased as "newest"
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("'l1-pruned'"), std::string::npos);
  refused = client::DeleteModel(*client_, "m", 0);  // every version
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);

  ImportVersion("other", false);
  ASSERT_TRUE(SetAlias("baseline", "other", 0).ok());
  ASSERT_TRUE(SetAlias("l1-pruned", "other", 0).ok());
  auto deleted = client::DeleteModel(*client_, "m", 0);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->deleted_versions_size(), 2);
  EXPECT_GT(deleted->freed_bytes(), 0);
  v1::ListModelsResponse models;
  ASSERT_TRUE(ListModels(&models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).name(), "other");
  EXPECT_GT(models.models(0).disk_bytes(), models.models(0).checkpoint_bytes() - 1);
  EXPECT_FALSE(fs::exists(ModelsDir() + "/m"));
  EXPECT_EQ(client::DeleteModel(*client_, "m", 1).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DeleteTest, DeletingALoadedVersionLetsInFlightSegmentsFinishAndLaterOnesAreNotFound) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_batch_size=1"}));
  const int64_t version = ImportVersion("m", true);
  ASSERT_TRUE(Segment("m", version).ok());
  const double computed_before = Metric("segserve_compute_seconds_count");

  // Big images (16 tiles of 256 each), batches of one tile: every call takes many forward
  // passes, so the calls are still running when the delete arrives.
  auto big_call = [&]() {
    v1::SegmentRequest request;
    request.mutable_model()->set_name("m");
    request.mutable_model()->set_version(version);
    request.mutable_options()->set_tile_size(256);
    auto* raw = request.mutable_image()->mutable_raw();
    raw->set_height(1024);
    raw->set_width(1024);
    raw->set_channels(3);
    raw->set_dtype(v1::DTYPE_UINT8);
    raw->set_data(std::string(1024 * 1024 * 3, '\x40'));
    v1::SegmentResponse response;
    auto context = client_->NewContext();
    grpc::Status status = segmentation_->Segment(context.get(), request, &response);
    return std::make_pair(status, Clock::now());
  };
  constexpr int kCalls = 3;
  std::vector<std::future<std::pair<grpc::Status, Clock::time_point>>> calls;
  for (int i = 0; i < kCalls; ++i) calls.push_back(std::async(std::launch::async, big_call));
  // Wait until the model has computed a tile of these calls: they have resolved the model.
  for (int i = 0; i < 2400 && Metric("segserve_compute_seconds_count") <= computed_before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_GT(Metric("segserve_compute_seconds_count"), computed_before);

  auto deleted = client::DeleteModel(*client_, "m", version);
  const Clock::time_point deleted_at = Clock::now();
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(Metric(absl::StrCat("segserve_model_loaded{model=\"m\",version=\"", version, "\"}")),
            -1)
      << "the loaded gauge of a deleted version is removed";
  // Later calls do not find it.
  grpc::Status later = Segment("m", version);
  EXPECT_EQ(later.error_code(), grpc::StatusCode::NOT_FOUND) << StatusText(later);
  EXPECT_EQ(Segment("m", 0).error_code(), grpc::StatusCode::NOT_FOUND);
  // The calls in flight finish on the version they hold.
  int finished_after_delete = 0;
  for (auto& call : calls) {
    auto [status, done_at] = call.get();
    EXPECT_TRUE(status.ok()) << StatusText(status);
    finished_after_delete += done_at > deleted_at;
  }
  Report(absl::StrCat(kCalls, " Segment calls in flight during Models.Delete: all OK, ",
                      finished_after_delete, " finished after the delete returned"));
  EXPECT_GE(finished_after_delete, 1) << "no call was still running when the delete returned";
}

TEST_F(DeleteTest, ADataSetIsRefusedWhileAJobUsesItAndRunsKeepWhatRetentionSays) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(MakeDataset("ds", 12));
  const double datasets_bytes = Bytes("datasets");
  EXPECT_GT(datasets_bytes, 0) << "refreshed when the generation job finished";
  v1::ListDatasetsResponse listed;
  ASSERT_TRUE(ListDatasets(&listed).ok());
  ASSERT_EQ(listed.datasets_size(), 1);
  EXPECT_EQ(static_cast<double>(listed.datasets(0).disk_bytes()), datasets_bytes);

  // A long job uses the set: refused, naming the job; it is cancelled after two epochs.
  v1::Job long_job;
  ASSERT_TRUE(SubmitTrain(TinySpec("ds", 200, 1), &long_job).ok());
  // Queued or running, it blocks the delete either way.
  auto refused = client::DeleteDataset(*client_, "ds");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find(long_job.job_id()), std::string::npos)
      << refused.status();
  bool cancel_sent = false;
  const v1::Job cancelled = WaitTerminal(long_job.job_id(), [&](const v1::JobEvent& event) {
    if (!cancel_sent && event.job().progress().epoch() >= 3) {
      cancel_sent = true;
      v1::JobRef ref;
      ref.set_job_id(long_job.job_id());
      v1::Job ignored;
      auto context = client_->NewContext();
      EXPECT_TRUE(training_->CancelJob(context.get(), ref, &ignored).ok());
    }
  });
  ASSERT_EQ(cancelled.state(), v1::JOB_STATE_CANCELLED) << cancelled.reason();
  const std::string cancelled_run = data_dir_ + "/runs/" + long_job.job_id();
  EXPECT_TRUE(fs::exists(cancelled_run + "/latest.ckpt"))
      << "a cancelled job keeps its last checkpoint (--failed_run_retention)";

  // A job that succeeds: its model is registered, its run keeps no checkpoint (default).
  v1::Job ok_job;
  ASSERT_TRUE(SubmitTrain(TinySpec("ds", 1, 1), &ok_job).ok());
  const v1::Job succeeded = WaitTerminal(ok_job.job_id());
  ASSERT_EQ(succeeded.state(), v1::JOB_STATE_SUCCEEDED) << succeeded.reason();
  const std::string ok_run = data_dir_ + "/runs/" + ok_job.job_id();
  EXPECT_TRUE(fs::exists(ok_run + "/registered.json"));
  EXPECT_FALSE(HasCheckpoints(ok_run)) << "--keep_run_checkpoints=none is the default";

  // Nothing uses the set now.
  auto freed = client::DeleteDataset(*client_, "ds");
  ASSERT_TRUE(freed.ok()) << freed.status();
  EXPECT_GT(freed->freed_bytes(), 0);
  EXPECT_EQ(Bytes("datasets"), 0) << "refreshed after the delete";
  ASSERT_TRUE(ListDatasets(&listed).ok());
  EXPECT_EQ(listed.datasets_size(), 0);
  EXPECT_EQ(client::DeleteDataset(*client_, "ds").status().code(), absl::StatusCode::kNotFound);

  // Purge: both finished jobs go with their files; the registered model stays.
  const double runs_bytes = Bytes("runs");
  EXPECT_GT(runs_bytes, 0);
  auto purged = client::PurgeJobs(*client_, std::chrono::hours(24));
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(purged->job_ids_size(), 0) << "nothing is a day old";
  purged = client::PurgeJobs(*client_, std::chrono::seconds(0));
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(purged->job_ids_size(), 3);  // the generation job and the two training jobs
  EXPECT_FALSE(fs::exists(cancelled_run));
  EXPECT_FALSE(fs::exists(ok_run));
  EXPECT_LT(Bytes("runs"), runs_bytes);
  v1::Job gone;
  EXPECT_EQ(GetJob(ok_job.job_id(), &gone).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ListModelsResponse models;
  ASSERT_TRUE(ListModels(&models).ok());
  EXPECT_EQ(models.models_size(), 1) << "purging a job keeps its registered model";
}

TEST_F(DeleteTest, TheDataDirGaugesFollowImportsAndDeletesOnAScrape) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const double models_before = Bytes("models");
  EXPECT_GE(models_before, 0);
  EXPECT_GT(Metric("segserve_data_dir_free_bytes"), 0);
  EXPECT_GT(Metric("segserve_data_dir_capacity_bytes"), 0);
  EXPECT_GT(Bytes("jobs_db"), 0);
  const int64_t version = ImportVersion("m", false);
  v1::ModelInfo info;
  ASSERT_TRUE(GetModel("m", version, &info).ok());
  EXPECT_EQ(Bytes("models"), models_before + static_cast<double>(info.disk_bytes()));
  ASSERT_TRUE(client::DeleteModel(*client_, "m", version).ok());
  // What is left of the name: models/m/.highest_version (a few bytes, so v1 is not reused).
  EXPECT_GE(Bytes("models"), models_before);
  EXPECT_LT(Bytes("models"), models_before + 100);
}

}  // namespace
}  // namespace segserve::fault
