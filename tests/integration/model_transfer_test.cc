// Issue 15, weights in and out: Models.ImportStream takes a state dict larger than the
// server's default message limit (an smp resnet34 U-net, ~98 MB, against 64 MiB), and
// Models.Export gives it back bit-exact — checked in Python (tests/integration/
// model_transfer_test.py): strict=True into smp's architecture with the same output at an
// odd size, and the encoder alone into torchvision's resnet34. Every refusal of a bad stream
// names its field and leaves no file behind in <data_dir>/incoming and no model; an
// interrupted stream (client cancel, server kill -9) imports nothing, leaves nothing after
// the next start, and a retry works. Real server, real segctl.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "client/lib/client.h"
#include "client/lib/model_transfer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "segserve/v1/models.grpc.pb.h"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "tests/testing/commands.h"
#include "tests/testing/model_fixture.h"
#include "tests/testing/server_process.h"
#include "test_paths.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

model::UnetConfig R18Config() {
  model::UnetConfig config;
  config.encoder = model::EncoderKind::kResNet18;
  config.skip_prune_level = 1;
  config.in_channels = 3;
  config.classes = 2;
  return config;
}

v1::ImportModelRequest Header(const std::string& name, v1::Encoder encoder, int level) {
  v1::ImportModelRequest header;
  header.set_name(name);
  header.mutable_config()->set_encoder(encoder);
  header.mutable_config()->set_skip_prune_level(level);
  header.mutable_config()->set_in_channels(3);
  header.mutable_config()->set_classes(2);
  return header;
}

class ModelTransferTest : public ::testing::Test {
 protected:
  void StartServer(const std::vector<std::string>& flags = {}) {
    auto server = testing::ServerProcess::Start(testing::SegserveBinary(), dir_.path(), flags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ClientOptions options;
    options.target = server_->grpc_target();
    options.timeout = std::chrono::seconds(300);
    client_ = std::move(*client::Client::Create(options));
    models_ = v1::Models::NewStub(client_->channel());
  }

  // The files in <data_dir>/incoming (ImportStream's temporary files).
  std::vector<std::string> Incoming() {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_.path() + "/incoming", ec)) {
      names.push_back(e.path().filename().string());
    }
    return names;
  }

  int ModelCount() {
    auto context = client_->NewContext();
    v1::ListModelsResponse list;
    EXPECT_TRUE(models_->List(context.get(), v1::ListModelsRequest(), &list).ok());
    return list.models_size();
  }

  // Sends `chunks` on an ImportStream and returns its status.
  grpc::Status Stream(const std::vector<v1::ImportModelChunk>& chunks) {
    auto context = client_->NewContext();
    v1::ModelInfo info;
    auto writer = models_->ImportStream(context.get(), &info);
    for (const auto& chunk : chunks) {
      if (!writer->Write(chunk)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  testing::TempDir dir_;
  testing::TempDir work_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<v1::Models::Stub> models_;
};

v1::ImportModelChunk HeaderChunk(const v1::ImportModelRequest& header) {
  v1::ImportModelChunk chunk;
  *chunk.mutable_header() = header;
  return chunk;
}
v1::ImportModelChunk DataChunk(const std::string& data) {
  v1::ImportModelChunk chunk;
  chunk.set_data(data);
  return chunk;
}

TEST_F(ModelTransferTest, Resnet34StateDictImportsWithDefaultFlagsAndExportsBitExact) {
  const std::string py = std::string("/usr/bin/python3 ") + SEGSERVE_SOURCE_DIR +
                         "/tests/integration/model_transfer_test.py";
  testing::CommandResult made = testing::RunCommand(py + " make " + work_.path());
  if (made.exit_code != 0) GTEST_SKIP() << "Python reference unavailable: " << made.output;
  const std::string file = work_.path() + "/r34.pt";
  ASSERT_GT(fs::file_size(file), 64u << 20) << "the file must not fit in one default message";
  ASSERT_NO_FATAL_FAILURE(StartServer());

  // The unary Import is bound by the message limit; ImportStream is not.
  {
    v1::ImportModelRequest request = Header("r34", v1::ENCODER_RESNET34, 0);
    request.set_state_dict(*common::ReadFile(file));
    auto context = client_->NewContext();
    v1::ModelInfo info;
    EXPECT_EQ(models_->Import(context.get(), request, &info).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  int64_t last_progress = 0;
  auto imported = client::ImportModelFile(*client_, Header("r34", v1::ENCODER_RESNET34, 0), file,
                                          [&](int64_t done, int64_t) { last_progress = done; });
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->name(), "r34");
  EXPECT_EQ(imported->version(), 1);
  EXPECT_EQ(last_progress, static_cast<int64_t>(fs::file_size(file)));
  EXPECT_THAT(Incoming(), ::testing::IsEmpty());

  // Export through segctl (smp keys) and through the library (torchvision encoder).
  const std::string smp = work_.path() + "/exported.pt";
  testing::CommandResult exported =
      testing::RunCommand(testing::SegctlBinary() + " --server " + server_->grpc_target() +
                          " models export r34 --out " + smp);
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_THAT(exported.output, HasSubstr("r34:1 -> " + smp));
  EXPECT_THAT(exported.output, HasSubstr("278 tensors"));
  EXPECT_FALSE(fs::exists(smp + ".part"));
  v1::ExportModelRequest request;
  request.mutable_model()->set_name("r34");
  request.set_format(v1::ExportModelRequest::FORMAT_TORCHVISION_ENCODER);
  const std::string tv = work_.path() + "/encoder.pt";
  auto header = client::ExportModelToFile(*client_, request, tv);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->sha256(), common::Sha256Hex(*common::ReadFile(tv)));
  EXPECT_EQ(header->model().version(), 1);

  testing::CommandResult checked =
      testing::RunCommand(py + " check " + work_.path() + " " + smp + " " + tv);
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_THAT(checked.output, HasSubstr("OK"));
}

TEST_F(ModelTransferTest, BadStreamsAreRefusedNamingTheFieldAndLeaveNothing) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_model_bytes=1048576"}));
  const v1::ImportModelRequest header = Header("bad", v1::ENCODER_RESNET18, 1);
  struct Case {
    const char* what;
    std::vector<v1::ImportModelChunk> chunks;
    const char* message;
  };
  v1::ImportModelRequest over = header;
  over.set_state_dict_bytes(2 << 20);
  v1::ImportModelRequest declared = header;
  declared.set_state_dict_bytes(100);
  v1::ImportModelRequest sha = header;
  sha.set_state_dict_sha256(std::string(64, 'a'));
  v1::ImportModelRequest bad_name = header;
  bad_name.set_name("../x");
  v1::ImportModelRequest inline_bytes = header;
  inline_bytes.set_state_dict("abc");
  const std::string half_mib(512 << 10, 'x');
  const std::vector<Case> cases = {
      {"data first", {DataChunk("abc")}, "header: the first message must be the header"},
      {"no messages", {}, "header: the first message must be the header"},
      {"two headers", {HeaderChunk(header), HeaderChunk(header)}, "header: sent twice"},
      {"declared over the limit", {HeaderChunk(over)}, "--max_model_bytes"},
      {"sent over the limit",
       {HeaderChunk(header), DataChunk(half_mib), DataChunk(half_mib), DataChunk("y")},
       "--max_model_bytes"},
      {"more than declared", {HeaderChunk(declared), DataChunk(std::string(101, 'x'))},
       "more bytes than header.state_dict_bytes"},
      {"fewer than declared", {HeaderChunk(declared), DataChunk(std::string(50, 'x'))},
       "50 bytes received"},
      {"sha256 mismatch", {HeaderChunk(sha), DataChunk("abc")}, "header.state_dict_sha256"},
      {"no data", {HeaderChunk(header)}, "data: no state-dict bytes"},
      {"bad name", {HeaderChunk(bad_name), DataChunk("abc")}, "header.name"},
      {"inline state dict", {HeaderChunk(inline_bytes)}, "header.state_dict: must be empty"},
      {"not a state dict", {HeaderChunk(header), DataChunk("PK\x03\x04 not really a zip")},
       "zip"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    grpc::Status status = Stream(c.chunks);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
    EXPECT_THAT(Incoming(), ::testing::IsEmpty());
  }
  EXPECT_EQ(ModelCount(), 0);

  // Export refusals.
  v1::ExportModelRequest missing;
  missing.mutable_model()->set_name("nope");
  auto exported = client::ExportModelToFile(*client_, missing, work_.path() + "/nope.pt");
  EXPECT_EQ(exported.status().code(), absl::StatusCode::kNotFound) << exported.status();
  EXPECT_FALSE(fs::exists(work_.path() + "/nope.pt"));
  EXPECT_FALSE(fs::exists(work_.path() + "/nope.pt.part"));
  v1::ExportModelRequest bad_format;
  bad_format.mutable_model()->set_name("nope");
  bad_format.set_format(static_cast<v1::ExportModelRequest::Format>(9));
  exported = client::ExportModelToFile(*client_, bad_format, work_.path() + "/nope.pt");
  EXPECT_EQ(exported.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(exported.status().message(), HasSubstr("format"));
}

TEST_F(ModelTransferTest, InterruptedImportLeavesNothingAndARetryWorks) {
  ASSERT_TRUE(testing::AddTestModel(dir_.path(), "small", R18Config(), 5).ok());
  ASSERT_NO_FATAL_FAILURE(StartServer());
  // A valid file: the stored model exported (smp keys).
  v1::ExportModelRequest request;
  request.mutable_model()->set_name("small");
  const std::string file = work_.path() + "/small.pt";
  ASSERT_TRUE(client::ExportModelToFile(*client_, request, file).ok());
  const std::string bytes = *common::ReadFile(file);

  {  // Header and half the file, then the client goes away.
    auto context = client_->NewContext();
    v1::ModelInfo info;
    auto writer = models_->ImportStream(context.get(), &info);
    v1::ImportModelRequest header = Header("copy", v1::ENCODER_RESNET18, 1);
    header.set_state_dict_bytes(static_cast<int64_t>(bytes.size()));
    ASSERT_TRUE(writer->Write(HeaderChunk(header)));
    ASSERT_TRUE(writer->Write(DataChunk(bytes.substr(0, bytes.size() / 2))));
    for (int i = 0; i < 100 && Incoming().empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(Incoming().size(), 1u) << "the partial file is written as it arrives";
    context->TryCancel();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  for (int i = 0; i < 250 && !Incoming().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_THAT(Incoming(), ::testing::IsEmpty());
  EXPECT_EQ(ModelCount(), 1);

  {  // Header and half the file, then the server is killed (-9): the next start removes it.
    auto context = client_->NewContext();
    v1::ModelInfo info;
    auto writer = models_->ImportStream(context.get(), &info);
    ASSERT_TRUE(writer->Write(HeaderChunk(Header("copy", v1::ENCODER_RESNET18, 1))));
    ASSERT_TRUE(writer->Write(DataChunk(bytes.substr(0, bytes.size() / 2))));
    for (int i = 0; i < 100 && Incoming().empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(Incoming().size(), 1u);
    ASSERT_TRUE(server_->Stop(SIGKILL, std::chrono::seconds(10)).status().code() ==
                absl::StatusCode::kInternal);  // killed by a signal
    EXPECT_FALSE(writer->Finish().ok());
  }
  server_.reset();
  models_.reset();
  client_.reset();
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_THAT(Incoming(), ::testing::IsEmpty()) << "a crashed import's file is removed at start";
  EXPECT_EQ(ModelCount(), 1);

  v1::ImportModelRequest header = Header("copy", v1::ENCODER_RESNET18, 1);
  header.set_load(true);
  header.set_import_id("copy-import-1");
  auto imported = client::ImportModelFile(*client_, header, file);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->version(), 1);
  EXPECT_EQ(imported->state(), v1::LOAD_STATE_LOADED);
  // The same import again (a retry after a lost reply): the same version, none added.
  auto retried = client::ImportModelFile(*client_, header, file);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->version(), 1);
  EXPECT_EQ(ModelCount(), 2);
  header.set_import_id("bad id");
  EXPECT_EQ(client::ImportModelFile(*client_, header, file).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Exported again, the copy is the same file.
  request.mutable_model()->set_name("copy");
  const std::string again = work_.path() + "/copy.pt";
  ASSERT_TRUE(client::ExportModelToFile(*client_, request, again).ok());
  EXPECT_EQ(*common::ReadFile(again), bytes);
}

}  // namespace
}  // namespace segserve
