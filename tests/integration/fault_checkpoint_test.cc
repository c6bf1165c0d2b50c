// Damaged checkpoints against the real segserve binary (issue 9, part of the fault suite
// whose main is in fault_test.cc): a model version whose checkpoint fails its checksum, and
// a training run whose latest (and best) checkpoints are damaged while it is interrupted.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "tests/integration/fault_harness.h"
#include "tests/testing/model_fixture.h"

namespace segserve::fault {
namespace {

namespace fs = std::filesystem;

TEST_F(FaultTest, CorruptModelCheckpointIsReportedAndOtherModelsServe) {
  ASSERT_TRUE(testing::AddTestModel(data_dir_, "good", SmallConfig(), 1).ok());
  auto bad = testing::AddTestModel(data_dir_, "bad", SmallConfig(), 2);
  ASSERT_TRUE(bad.ok()) << bad.status();
  ASSERT_TRUE(Overwrite(bad->checkpoint_path, -1, 64, '\x5a').ok());

  ASSERT_NO_FATAL_FAILURE(StartServer());
  grpc::Status status = Segment("good", 0);
  EXPECT_TRUE(status.ok()) << StatusText(status);
  v1::ListModelsResponse models;
  ASSERT_TRUE(ListModels(&models).ok());
  std::map<std::string, v1::ModelInfo> by_name;
  for (const auto& model : models.models()) by_name[model.name()] = model;
  ASSERT_EQ(by_name.size(), 2u);
  EXPECT_EQ(by_name["good"].state(), v1::LOAD_STATE_LOADED);
  EXPECT_EQ(by_name["bad"].state(), v1::LOAD_STATE_FAILED);
  EXPECT_TRUE(absl::StrContains(by_name["bad"].load_error(), "checksum mismatch"))
      << by_name["bad"].load_error();
  v1::ModelInfo info;
  ASSERT_TRUE(GetModel("bad", 1, &info).ok());
  EXPECT_EQ(info.state(), v1::LOAD_STATE_FAILED);

  status = Segment("bad", 0);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << StatusText(status);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "checksum mismatch"))
      << status.error_message();
  status = LoadModel("bad", 1);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS) << StatusText(status);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "checksum mismatch"))
      << status.error_message();
}

class CheckpointFaultTest : public FaultTest {
 protected:
  // Trains a 2-epoch job, kills the server in epoch 2, damages the named checkpoints of
  // the run, restarts, and follows the resumed job to its end. Returns the first epoch the
  // resumed run reported and every event message.
  void RunWithDamaged(const std::vector<std::string>& files, int* first_epoch,
                      std::vector<std::string>* messages, std::string* job_id) {
    ASSERT_NO_FATAL_FAILURE(StartServer());
    ASSERT_NO_FATAL_FAILURE(MakeDataset("ck", 16));
    v1::TrainSpec spec = TinySpec("ck", 2, 1);
    spec.set_model_name("ck-model");
    v1::Job job;
    ASSERT_TRUE(SubmitTrain(spec, &job).ok());
    *job_id = job.job_id();
    {
      // Epoch 1 is checkpointed once epoch 2 reports progress.
      grpc::ClientContext context;
      v1::JobRef ref;
      ref.set_job_id(*job_id);
      auto reader = training_->WatchJob(&context, ref);
      v1::JobEvent event;
      while (reader->Read(&event) && event.job().progress().epoch() < 2) {
      }
      ASSERT_EQ(event.job().progress().epoch(), 2);
      ASSERT_NO_FATAL_FAILURE(Kill());
      context.TryCancel();
      reader->Finish();
    }
    for (const std::string& file : files) {
      ASSERT_TRUE(Overwrite(data_dir_ + "/runs/" + *job_id + "/" + file, -1, 64, '\x3c').ok());
    }
    // Keep the run's files after success: the .damaged ones are what this test inspects
    // (the default, none, removes every checkpoint once the model is registered).
    ASSERT_NO_FATAL_FAILURE(StartServer({"--keep_run_checkpoints=all"}));
    *first_epoch = 0;
    const v1::Job done = WaitTerminal(*job_id, [&](const v1::JobEvent& e) {
      messages->push_back(e.message());
      // The snapshot, "started" and the note carry the progress persisted before the kill;
      // only the resumed run's own reports read "epoch E/N step ...".
      if (*first_epoch == 0 && absl::StartsWith(e.message(), "epoch ")) {
        *first_epoch = e.job().progress().epoch();
      }
    });
    ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
    EXPECT_EQ(done.restarts(), 1);
    grpc::Status served = Segment("ck-model", done.model_version());
    EXPECT_TRUE(served.ok()) << StatusText(served);
    for (const std::string& file : files) {
      EXPECT_TRUE(fs::exists(data_dir_ + "/runs/" + *job_id + "/" + file + ".damaged"))
          << file << " was not kept";
    }
  }

  static std::string Find(const std::vector<std::string>& messages, const std::string& text) {
    for (const std::string& message : messages) {
      if (absl::StrContains(message, text)) return message;
    }
    return "";
  }
};

TEST_F(CheckpointFaultTest, DamagedLatestCheckpointResumesFromTheBestCheckpoint) {
  int first_epoch = 0;
  std::vector<std::string> messages;
  std::string id;
  ASSERT_NO_FATAL_FAILURE(RunWithDamaged({"latest.ckpt"}, &first_epoch, &messages, &id));
  const std::string note = Find(messages, "latest.ckpt is damaged");
  ASSERT_FALSE(note.empty()) << "no event reported the damaged checkpoint";
  EXPECT_TRUE(absl::StrContains(note, "checksum mismatch")) << note;
  const std::string marker = "resuming from best.ckpt after epoch ";
  const size_t at = note.find(marker);
  ASSERT_NE(at, std::string::npos) << note;
  int best_epoch = 0;
  ASSERT_TRUE(absl::SimpleAtoi(note.substr(at + marker.size(), 1), &best_epoch)) << note;
  EXPECT_GE(best_epoch, 1);
  EXPECT_EQ(first_epoch, best_epoch + 1) << note;
}

TEST_F(CheckpointFaultTest, DamagedLatestAndBestCheckpointsRestartFromEpochOne) {
  int first_epoch = 0;
  std::vector<std::string> messages;
  std::string id;
  ASSERT_NO_FATAL_FAILURE(
      RunWithDamaged({"latest.ckpt", "best.ckpt"}, &first_epoch, &messages, &id));
  const std::string note = Find(messages, "best.ckpt is damaged too");
  ASSERT_FALSE(note.empty()) << "no event reported the damaged checkpoints";
  EXPECT_TRUE(absl::StrContains(note, "training restarts from epoch 0")) << note;
  EXPECT_EQ(first_epoch, 1);
}

}  // namespace
}  // namespace segserve::fault
