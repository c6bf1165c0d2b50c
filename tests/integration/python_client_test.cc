// The Python client (client/python, package `segserve`) against the real segserve binary:
// tests/integration/python_client_test.py runs from the package staged by the cmake target
// python_client (build/python, stubs generated from proto/ at build time) and checks
// segment, segment_many, a tiny training job, analyze, typed auth and deadline errors, the
// README example, an offline `pip install ./client/python`, and TLS with a CA file. This
// file starts the server with tokens and a model, and writes the test images with
// reference masks from segserve.v1 Segment called through the C++ client.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <random>
#include <thread>

#include "client/lib/client.h"
#include "gtest/gtest.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "server/auth/token_file.h"
#include "server/data/codec.h"
#include "server/data/image.h"
#include "test_paths.h"
#include "tests/testing/commands.h"
#include "tests/testing/model_fixture.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

constexpr char kTrainerToken[] = "py-client-trainer-token";
constexpr char kViewerToken[] = "py-client-viewer-token";
constexpr char kAdminToken[] = "py-client-admin-token";

data::Image TestImage(int height, int width, uint64_t seed) {
  data::Image image = data::Image::Create(height, width, 3);
  std::mt19937_64 rng(seed);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) {
        const double v = 128 + 90 * std::sin(x * 0.05 + c + seed) * std::cos(y * 0.07 - c) +
                         static_cast<double>(rng() % 40) - 20;
        image.bytes[(static_cast<size_t>(y) * width + x) * 3 + c] =
            static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
      }
    }
  }
  return image;
}

bool WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  return static_cast<bool>(out);
}

class PythonClientTest : public ::testing::Test {
 protected:
  // Starts segserve with a 3-class model "plasmo-l1" (aliases baseline, l1-pruned), a
  // trainer, a viewer and an admin token, and with TLS (certificate for localhost from a test CA,
  // ca.pem in the data dir) when `tls`; waits for health SERVING.
  void StartServer(bool tls) {
    const std::string d = dir_.path();
    model::UnetConfig config;
    config.encoder = model::EncoderKind::kResNet18;
    config.skip_prune_level = 1;
    config.classes = 3;
    // Seed 3: of the seeds tried, one whose masks are not a single class on the test images.
    ASSERT_TRUE(testing::AddTestModel(d, "plasmo-l1", config, 3).ok());
    ASSERT_TRUE(WriteFile(d + "/tokens",
                          auth::TokenLine("trainer", auth::Role::kTrainer, kTrainerToken) + "\n" +
                              auth::TokenLine("viewer", auth::Role::kViewer, kViewerToken) + "\n" +
                              auth::TokenLine("admin", auth::Role::kAdmin, kAdminToken) + "\n"));
    std::vector<std::string> flags = {"--auth_tokens_file=" + d + "/tokens",
                                      "--aliases=baseline=plasmo-l1,l1-pruned=plasmo-l1"};
    client::ClientOptions options;
    if (tls) {
      const std::string script =
          "cd " + d +
          " && "
          "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca "
          "-keyout ca.key -out ca.pem && "
          "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key "
          "-out server.csr && "
          "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext && "
          "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
          "-extfile san.ext -out server.pem";
      const testing::CommandResult certs = testing::RunCommand(script);
      ASSERT_EQ(certs.exit_code, 0) << certs.output;
      flags.push_back("--tls_cert=" + d + "/server.pem");
      flags.push_back("--tls_key=" + d + "/server.key");
      options.tls_ca = d + "/ca.pem";
    }
    auto server = testing::ServerProcess::Start(testing::SegserveBinary(), d, flags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    target_ = (tls ? "localhost:" : "127.0.0.1:") + std::to_string(server_->grpc_port());
    options.target = target_;
    options.token = kTrainerToken;
    options.timeout = std::chrono::seconds(120);
    client_ = std::move(*client::Client::Create(options));
    bool serving = false;
    for (int i = 0; i < 600 && !serving; ++i) {
      auto health = client_->Health();
      serving = health.ok() && *health == client::ServingStatus::kServing;
      if (!serving) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(serving);
  }

  // Skips unless the Python side can run: Debian's python3 with grpcio, protobuf, numpy
  // and pip, and the package staged by the cmake target python_client.
  bool PythonMissing(std::string* why) {
    const testing::CommandResult probe = testing::RunCommand(
        "/usr/bin/python3 -c 'import grpc, google.protobuf, numpy, pip' && "
        "test -f " +
        package_dir_ + "/segserve/v1/segmentation_pb2_grpc.py");
    *why = probe.output;
    return probe.exit_code != 0;
  }

  // Runs python_client_test.py (the test classes in `tests`) against the server.
  testing::CommandResult RunPython(const std::string& tests, const std::string& extra = "") {
    return testing::RunCommand(
        "PYTHONPATH=" + package_dir_ + " /usr/bin/python3 " + SEGSERVE_SOURCE_DIR +
        "/tests/integration/python_client_test.py --target " + target_ + " --source_dir " +
        SEGSERVE_SOURCE_DIR + " --work_dir " + work_dir_ + " --trainer_token " + kTrainerToken +
        " --viewer_token " + kViewerToken + " --admin_token " + kAdminToken + extra + " " +
        tests);
  }

  // work_dir/image<i>.{rgb,shape,png,mask}: raw pixels, their shape, the same as PNG, and
  // the raw mask segserve.v1 Segment answers for them.
  void WriteReference(int index, const data::Image& image) {
    const std::string base = work_dir_ + "/image" + std::to_string(index);
    ASSERT_TRUE(WriteFile(base + ".rgb", std::string(image.bytes.begin(), image.bytes.end())));
    ASSERT_TRUE(WriteFile(base + ".shape", std::to_string(image.height) + " " +
                                               std::to_string(image.width) + " 3\n"));
    auto png = data::EncodePng(image);
    ASSERT_TRUE(png.ok()) << png.status();
    ASSERT_TRUE(WriteFile(base + ".png", *png));
    v1::SegmentRequest request;
    request.mutable_model()->set_name("plasmo-l1");
    auto* raw = request.mutable_image()->mutable_raw();
    raw->set_height(image.height);
    raw->set_width(image.width);
    raw->set_channels(3);
    raw->set_dtype(v1::DTYPE_UINT8);
    raw->set_data(std::string(image.bytes.begin(), image.bytes.end()));
    request.mutable_options()->set_mask_encoding(v1::MASK_RAW);
    v1::SegmentResponse response;
    auto context = client_->NewContext();
    const grpc::Status status =
        v1::Segmentation::NewStub(client_->channel())->Segment(context.get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.mask().size(), image.num_pixels());
    ASSERT_TRUE(WriteFile(base + ".mask", response.mask()));
  }

  testing::TempDir dir_;
  const std::string work_dir_ = dir_.path() + "/py";
  const std::string package_dir_ = std::string(SEGSERVE_BINARY_DIR) + "/python";
  std::unique_ptr<testing::ServerProcess> server_;
  std::string target_;
  std::unique_ptr<client::Client> client_;
};

constexpr char kSkipMessage[] =
    "needs /usr/bin/python3 with python3-grpcio, python3-protobuf, python3-numpy and "
    "python3-pip (scripts/install-deps.sh test), and the cmake target python_client: ";

TEST_F(PythonClientTest, EveryCallAgainstTheServer) {
  std::string why;
  if (PythonMissing(&why)) GTEST_SKIP() << kSkipMessage << why;
  ASSERT_NO_FATAL_FAILURE(StartServer(/*tls=*/false));
  ASSERT_EQ(testing::RunCommand("mkdir -p " + work_dir_).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(WriteReference(0, TestImage(96, 128, 1)));
  ASSERT_NO_FATAL_FAILURE(WriteReference(1, TestImage(64, 64, 2)));
  const testing::CommandResult run = RunPython("PythonClientTest");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("\nOK\n"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("skipped"), std::string::npos) << run.output;
  for (const char* name :
       {"test_segment_array_and_path_give_segments_mask",
        "test_segment_many_streams_in_input_order", "test_submit_and_watch_a_tiny_training_job",
        "test_analyze_returns_plain_rows", "test_auth_failures_raise_typed_errors",
        "test_deadline_exceeded_is_a_typed_timeout", "test_readme_snippet_is_the_example",
        "test_example_runs", "test_pip_install_offline_into_a_venv"}) {
    EXPECT_NE(run.output.find(std::string(name) + " ("), std::string::npos) << name;
  }
}

// Client(..., tls="ca.pem") against a TLS server; a plaintext client is refused.
TEST_F(PythonClientTest, TlsWithACaFile) {
  std::string why;
  if (PythonMissing(&why)) GTEST_SKIP() << kSkipMessage << why;
  ASSERT_NO_FATAL_FAILURE(StartServer(/*tls=*/true));
  ASSERT_EQ(testing::RunCommand("mkdir -p " + work_dir_).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(WriteReference(0, TestImage(96, 128, 1)));
  const testing::CommandResult run = RunPython("TlsTest", " --tls_ca " + dir_.path() + "/ca.pem");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("\nOK\n"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("test_segment_over_tls ("), std::string::npos) << run.output;
}

}  // namespace
}  // namespace segserve
