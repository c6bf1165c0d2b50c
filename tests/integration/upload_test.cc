// Datasets.Upload against the real segserve binary (issue 15): native and nnU-Net sets
// uploaded with the client library, listed and trained on; an upload cancelled mid-stream
// leaves nothing and its retry succeeds; a retry after success answers the same set; every
// rejection is INVALID_ARGUMENT naming the file and leaves the datasets folder unchanged;
// `segctl datasets upload` end to end. Uses the fault suite's fixture (a server over a temp
// data dir with typed stubs).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/lib/dataset_upload.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/common/file_util.h"
#include "server/data/codec.h"
#include "server/data/nnunet.h"
#include "server/data/synthetic.h"
#include "server/data/synthetic_mr.h"
#include "tests/integration/fault_harness.h"
#include "tests/testing/commands.h"

namespace segserve::fault {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class UploadTest : public FaultTest {
 protected:
  // A native synthetic set of `n` 64x64 images under the test's temp dir.
  std::string LocalNative(const std::string& name, int n, uint64_t seed = 3) {
    const std::string dir = dir_.path() + "/local-" + name;
    data::SyntheticDatasetOptions o;
    o.count = n;
    o.seed = seed;
    o.sample.size = 64;
    o.name = name;
    absl::Status s = data::GenerateSyntheticDataset(dir, o);
    EXPECT_TRUE(s.ok()) << s;
    return dir;
  }
  std::string LocalNnUnet(const std::string& name, int n) {
    const std::string native = LocalNative(name + "-src", n);
    const std::string dir = dir_.path() + "/local-" + name;
    absl::StatusOr<data::Dataset> ds = data::OpenDataset(native);
    EXPECT_TRUE(ds.ok()) << ds.status();
    absl::Status s = data::ExportNnUnetDataset(*ds, dir);
    EXPECT_TRUE(s.ok()) << s;
    return dir;
  }
  absl::StatusOr<v1::DatasetInfo> UploadDir(const std::string& dir, const std::string& name,
                                            int64_t chunk = 4096) {
    absl::StatusOr<client::UploadPlan> plan = client::PlanUpload(dir, name, "");
    if (!plan.ok()) return plan.status();
    return client::UploadDataset(*client_, *plan, chunk);
  }
  std::vector<std::string> DatasetEntries() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(data_dir_ + "/datasets")) {
      names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  // Staging directories disappear when the server's upload pool has handled the stream's
  // end; the client may see CANCELLED before that.
  bool WaitNoStaging() {
    for (int i = 0; i < 400; ++i) {
      const auto names = DatasetEntries();
      if (std::none_of(names.begin(), names.end(),
                       [](const std::string& n) { return n.rfind(".upload-", 0) == 0; })) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }
  std::map<std::string, v1::DatasetInfo> Listed() {
    v1::ListDatasetsResponse response;
    EXPECT_TRUE(ListDatasets(&response).ok());
    std::map<std::string, v1::DatasetInfo> out;
    for (const auto& d : response.datasets()) out[d.name()] = d;
    return out;
  }
  // Sends the header and the first half of `plan`'s files on `context` and waits until the
  // server has staged something. The caller ends the call.
  std::unique_ptr<grpc::ClientWriter<v1::UploadDatasetChunk>> StartPartialUpload(
      grpc::ClientContext* context, v1::DatasetInfo* info, const client::UploadPlan& plan) {
    auto writer = datasets_->Upload(context, info);
    v1::UploadDatasetChunk message;
    auto* header = message.mutable_header();
    header->set_name(plan.name);
    header->set_layout(plan.layout);
    header->set_upload_id(plan.upload_id);
    header->set_total_bytes(plan.total_bytes);
    header->set_file_count(static_cast<int>(plan.files.size()));
    EXPECT_TRUE(writer->Write(message));
    for (size_t i = 0; i < plan.files.size() / 2; ++i) {
      std::ifstream in(plan.dir + "/" + plan.files[i].path, std::ios::binary);
      std::stringstream bytes;
      bytes << in.rdbuf();
      message.Clear();
      message.mutable_file()->set_path(plan.files[i].path);
      message.mutable_file()->set_data(bytes.str());
      message.mutable_file()->set_last(true);
      EXPECT_TRUE(writer->Write(message));
    }
    bool staged = false;
    for (int i = 0; i < 400 && !staged; ++i) {
      for (const auto& name : DatasetEntries()) staged |= name.rfind(".upload-", 0) == 0;
      if (!staged) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(staged) << "something was staged before the upload broke off";
    return writer;
  }
  void ExpectRejected(const absl::Status& status, const std::string& file,
                      const std::string& reason, const std::vector<std::string>& before) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(file));
    EXPECT_THAT(std::string(status.message()), HasSubstr(reason));
    EXPECT_TRUE(WaitNoStaging());
    EXPECT_EQ(DatasetEntries(), before) << "nothing left behind";
  }
};

TEST_F(UploadTest, NativeAndNnUnetSetsAreListedAndTrainable) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--bootstrap=false"}));
  auto native = UploadDir(LocalNative("n", 8), "up-native");
  ASSERT_TRUE(native.ok()) << native.status();
  EXPECT_EQ(native->name(), "up-native");
  EXPECT_EQ(native->images(), 8);
  EXPECT_EQ(native->channels(), 3);
  EXPECT_GT(native->disk_bytes(), 0);
  auto nn = UploadDir(LocalNnUnet("nn", 10), "up-nn");
  ASSERT_TRUE(nn.ok()) << nn.status();
  EXPECT_EQ(nn->images(), 10);
  EXPECT_EQ(nn->splits().at("train") + nn->splits().at("val") + nn->splits().at("test"), 10);
  EXPECT_THAT(std::vector<std::string>(nn->class_names().begin(), nn->class_names().end()),
              ::testing::ElementsAre("background", "red_blood_cell", "parasite"));

  auto listed = Listed();
  ASSERT_EQ(listed.count("up-native"), 1u);
  ASSERT_EQ(listed.count("up-nn"), 1u);
  EXPECT_EQ(listed["up-nn"].images(), 10);
  EXPECT_EQ(listed["up-nn"].disk_bytes(), nn->disk_bytes());
  EXPECT_EQ(DatasetEntries(), (std::vector<std::string>{"up-native", "up-nn"}));

  // The uploaded nnU-Net set trains: one epoch of one step.
  v1::Job job;
  ASSERT_TRUE(SubmitTrain(TinySpec("up-nn", 1, 1), &job).ok());
  const v1::Job done = WaitTerminal(job.job_id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
}

TEST_F(UploadTest, ACancelledUploadLeavesNothingAndItsRetrySucceeds) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--bootstrap=false"}));
  const std::string dir = LocalNative("c", 12);
  absl::StatusOr<client::UploadPlan> plan = client::PlanUpload(dir, "cut", "");
  ASSERT_TRUE(plan.ok()) << plan.status();
  {
    grpc::ClientContext context;
    v1::DatasetInfo info;
    auto writer = StartPartialUpload(&context, &info, *plan);
    context.TryCancel();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(WaitNoStaging());
  EXPECT_TRUE(DatasetEntries().empty());
  EXPECT_EQ(Listed().count("cut"), 0u);

  auto retried = client::UploadDataset(*client_, *plan, 4096);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->images(), 12);
  EXPECT_EQ(DatasetEntries(), std::vector<std::string>{"cut"});
}

TEST_F(UploadTest, AnUploadCutByAServerCrashIsRemovedAtStartAndItsRetrySucceeds) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--bootstrap=false"}));
  absl::StatusOr<client::UploadPlan> plan = client::PlanUpload(LocalNative("k", 10), "crash", "");
  ASSERT_TRUE(plan.ok()) << plan.status();
  {
    grpc::ClientContext context;
    v1::DatasetInfo info;
    auto writer = StartPartialUpload(&context, &info, *plan);
    ASSERT_NO_FATAL_FAILURE(Kill());
    EXPECT_FALSE(writer->Finish().ok());
  }
  ASSERT_EQ(DatasetEntries().size(), 1u) << "the staging directory outlives the process";
  ASSERT_NO_FATAL_FAILURE(StartServer({"--bootstrap=false"}));
  EXPECT_TRUE(DatasetEntries().empty()) << "removed at start";
  auto retried = client::UploadDataset(*client_, *plan, 4096);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->images(), 10);
  EXPECT_EQ(DatasetEntries(), std::vector<std::string>{"crash"});
}

TEST_F(UploadTest, ARetryAfterSuccessAnswersTheSetAndAnotherUploadIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--bootstrap=false"}));
  const std::string dir = LocalNative("r", 6);
  auto first = UploadDir(dir, "again");
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = UploadDir(dir, "again");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*second, *first))
      << second->DebugString() << " vs " << first->DebugString();
  EXPECT_EQ(DatasetEntries(), std::vector<std::string>{"again"});
  // Other files under the same name: another upload id.
  auto other = UploadDir(LocalNative("r2", 5, 9), "again");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists) << other.status();
  EXPECT_EQ(Listed().at("again").images(), 6);
  EXPECT_TRUE(WaitNoStaging());
}

TEST_F(UploadTest, RejectionsNameTheFileAndLeaveTheDatasetsFolderUnchanged) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--bootstrap=false", "--max_dataset_bytes=150000"}));
  ASSERT_TRUE(UploadDir(LocalNative("ok", 4), "kept").ok());
  const std::vector<std::string> before = DatasetEntries();
  ASSERT_EQ(before, std::vector<std::string>{"kept"});

  {  // a mask whose size differs from its image's
    const std::string dir = LocalNative("size", 4);
    ASSERT_TRUE(
        data::WriteMaskFile(dir + "/masks/synth_00002.png", data::Mask::Create(32, 32)).ok());
    ExpectRejected(UploadDir(dir, "bad").status(), "masks/synth_00002.png", "size mismatch",
                   before);
  }
  {  // a mask value that is not a declared class
    const std::string dir = LocalNative("value", 4);
    data::Mask mask = *data::ReadMaskFile(dir + "/masks/synth_00001.png");
    mask.ids[100] = 42;
    ASSERT_TRUE(data::WriteMaskFile(dir + "/masks/synth_00001.png", mask).ok());
    ExpectRejected(UploadDir(dir, "bad").status(), "masks/synth_00001.png", "holds value 42",
                   before);
  }
  {  // an image that does not decode
    const std::string dir = LocalNative("decode", 4);
    ASSERT_TRUE(
        common::WriteFileAtomically(dir + "/images/synth_00003.png", std::string(5000, 'z')).ok());
    ExpectRejected(UploadDir(dir, "bad").status(), "images/synth_00003.png", "unreadable file",
                   before);
  }
  {  // an unsafe path, sent by a client that does not use PlanUpload
    grpc::ClientContext context;
    v1::DatasetInfo info;
    auto writer = datasets_->Upload(&context, &info);
    v1::UploadDatasetChunk message;
    auto* header = message.mutable_header();
    header->set_name("bad");
    header->set_layout(v1::DATASET_LAYOUT_NATIVE);
    header->set_upload_id("evil-upload-1");
    header->set_total_bytes(3);
    header->set_file_count(1);
    writer->Write(message);
    message.Clear();
    message.mutable_file()->set_path("images/../../../escape.png");
    message.mutable_file()->set_data("abc");
    message.mutable_file()->set_last(true);
    writer->Write(message);
    writer->WritesDone();
    ExpectRejected(client::FromGrpcStatus(writer->Finish()), "images/../../../escape.png", "'..'",
                   before);
    EXPECT_FALSE(fs::exists(data_dir_ + "/escape.png"));
    EXPECT_FALSE(fs::exists(dir_.path() + "/escape.png"));
  }
  {  // more than --max_dataset_bytes: refused from the header, before any file is sent
    const std::string dir = LocalNative("big", 24);
    absl::StatusOr<client::UploadPlan> plan = client::PlanUpload(dir, "bad", "");
    ASSERT_TRUE(plan.ok());
    ASSERT_GT(plan->total_bytes, 150000);
    ExpectRejected(client::UploadDataset(*client_, *plan).status(), "total_bytes",
                   "--max_dataset_bytes", before);
  }
  EXPECT_EQ(Listed().size(), 1u);
}

TEST_F(UploadTest, SegctlUploadsWithProgressAndReportsRejections) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--bootstrap=false"}));
  const std::string segctl = absl::StrCat(testing::SegctlBinary(), " --server ",
                                          server_->grpc_target(), " datasets upload ");
  const std::string dir = LocalNnUnet("cli", 6);
  testing::CommandResult r = testing::RunCommand(segctl + dir + " --name from-cli");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("uploaded data set from-cli: 6 images"));
  EXPECT_THAT(r.output, HasSubstr("MB/s"));
  EXPECT_THAT(r.output, HasSubstr("(100%)"));
  r = testing::RunCommand(segctl + dir + " --name from-cli --quiet");
  EXPECT_EQ(r.exit_code, 0) << "a retry after success: " << r.output;
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("MB/s")));

  const std::string bad = LocalNative("cli-bad", 4);
  ASSERT_TRUE(data::WriteMaskFile(bad + "/masks/synth_00000.png", data::Mask::Create(8, 8)).ok());
  r = testing::RunCommand(segctl + bad + " --name bad --layout native");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(r.output, HasSubstr("masks/synth_00000.png"));
  r = testing::RunCommand(segctl + bad + " --name bad --layout nnunet");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  r = testing::RunCommand(segctl + bad + " --name bad --layout other");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(WaitNoStaging());
  EXPECT_EQ(DatasetEntries(), std::vector<std::string>{"from-cli"});
}

TEST_F(UploadTest, SegctlUploadsAnNnUnetNiftiSetAndABadVolumeIsRejected) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--bootstrap=false"}));
  const std::string segctl = absl::StrCat(testing::SegctlBinary(), " --server ",
                                          server_->grpc_target(), " datasets upload ");
  data::SyntheticMrOptions mr;
  mr.dims = {16, 16, 4};
  const std::string dir = dir_.path() + "/local-mr";
  ASSERT_TRUE(data::WriteSyntheticMrDataset(dir, 4, 3, mr).ok());
  testing::CommandResult r = testing::RunCommand(segctl + dir + " --name mr --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("uploaded data set mr: 16 images"));
  EXPECT_THAT(r.output, HasSubstr("1 channel(s), classes background,organ,lesion"));
  const std::map<std::string, v1::DatasetInfo> listed = Listed();
  ASSERT_EQ(listed.count("mr"), 1u);
  EXPECT_EQ(listed.at("mr").images(), 16);
  EXPECT_TRUE(fs::exists(data_dir_ + "/datasets/mr/images/mr_000.nii.gz"));

  // A label volume cut short: named as sent, nothing published.
  const std::string label = dir + "/labelsTr/mr_001.nii.gz";
  const std::string bytes = *common::ReadFile(label);
  ASSERT_TRUE(common::WriteFileAtomically(label, bytes.substr(0, bytes.size() - 20)).ok());
  const std::vector<std::string> before = DatasetEntries();
  ExpectRejected(UploadDir(dir, "mr-bad").status(), "labelsTr/mr_001.nii.gz", "truncated gzip",
                 before);
}

}  // namespace
}  // namespace segserve::fault
