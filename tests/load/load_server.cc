#include "tests/load/load_server.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "segserve/v1/datasets.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"
#include "server/auth/token_file.h"
#include "server/data/codec.h"
#include "tests/testing/model_fixture.h"

namespace segserve::load {
namespace {

using Clock = std::chrono::steady_clock;

// Whether `binary --help` documents `flag` (flags newer than some builds, e.g. the
// per-client stream limit, are passed only to binaries that know them).
bool BinaryHasFlag(const std::string& binary, const std::string& flag) {
  FILE* pipe = popen((binary + " --help 2>&1").c_str(), "r");
  if (pipe == nullptr) return false;
  std::string text;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) text.append(buffer, n);
  pclose(pipe);
  return absl::StrContains(text, absl::StrCat("--", flag, " "));
}

absl::Status WaitServing(client::Client& client, std::chrono::seconds timeout) {
  const auto give_up = Clock::now() + timeout;
  absl::StatusOr<client::ServingStatus> health = client.Health();
  while (!(health.ok() && *health == client::ServingStatus::kServing)) {
    if (Clock::now() > give_up) {
      return absl::DeadlineExceededError(absl::StrCat(
          "server not SERVING after ", timeout.count(),
          " s: ", health.ok() ? client::ServingStatusName(*health) : health.status().ToString()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    health = client.Health();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadServer::Start(const LoadServerOptions& options) {
  options_ = options;
  run_id_ = absl::StrCat(getpid(), "-",
                         std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count());
  if (!options.target.empty()) {
    target_ = options.target;
    pid_ = options.server_pid;
    description_ = absl::StrCat("segserve at ", target_,
                                pid_ > 0 ? absl::StrCat(" (pid ", pid_, ")") : " (no pid: no RSS)");
  } else {
    dir_ = std::make_unique<testing::TempDir>();
    model::UnetConfig config;  // the integration tests' model: ResNet18 U-net, L1, 3 classes.
    config.encoder = model::EncoderKind::kResNet18;
    config.skip_prune_level = 1;
    config.in_channels = 3;
    config.classes = 3;
    auto stored = testing::AddTestModel(dir_->path(), options.model, config, 7);
    if (!stored.ok()) return stored.status();
    const std::string binary = testing::SegserveBinary();
    std::vector<std::string> flags = {absl::StrCat("--max_queue=", options.max_queue),
                                      "--log_level=warning"};
    if (options.auth) {
      auto tokens_file = WriteTokens(dir_->path() + "/load-tokens", options.clients);
      if (!tokens_file.ok()) return tokens_file.status();
      flags.push_back("--auth_tokens_file=" + *tokens_file);
    } else if (BinaryHasFlag(binary, "max_streams_per_client")) {
      // With auth off every loopback client is one identity; the limit is not under test.
      flags.push_back(absl::StrCat("--max_streams_per_client=", options.clients + 16));
    }
    flags.insert(flags.end(), options.extra_flags.begin(), options.extra_flags.end());
    auto process = testing::ServerProcess::Start(binary, dir_->path(), flags);
    if (!process.ok()) return process.status();
    process_ = std::move(*process);
    target_ = process_->grpc_target();
    pid_ = process_->pid();
    description_ = absl::StrCat("segserve pid ", pid_, " at ", target_, ", model ", options.model,
                                " (resnet18 L1, 3 classes), flags ", absl::StrJoin(flags, " "));
  }
  auto client = client::Client::Create(ClientOptionsFor(-1));
  if (!client.ok()) return client.status();
  return WaitServing(**client, std::chrono::seconds(60));
}

absl::StatusOr<std::string> LoadServer::Stop() {
  if (process_ == nullptr) return std::string("not started here");
  const auto start = Clock::now();
  // The drain is 10 s by default; a server that takes much longer is hung.
  auto code = process_->Stop(SIGTERM, std::chrono::seconds(40));
  if (!code.ok()) return code.status();
  if (*code != 0) return absl::InternalError(absl::StrCat("exit status ", *code, " on SIGTERM"));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return absl::StrCat("SIGTERM: exit 0 after ", std::round(seconds * 10) / 10, " s");
}

absl::StatusOr<std::string> LoadServer::WriteTokens(const std::string& path, int clients) {
  std::string contents = "# segserve_load: one token per client\n";
  for (int i = -1; i < clients; ++i) {
    auto token = auth::GenerateToken();
    if (!token.ok()) return token.status();
    const std::string name = i < 0 ? "load-control" : absl::StrCat("load-client-", i);
    contents +=
        auth::TokenLine(name, i < 0 ? auth::Role::kTrainer : auth::Role::kSegmenter, *token) + "\n";
    tokens_.push_back(std::move(*token));
  }
  std::ofstream out(path);
  out << contents;
  if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", path));
  return path;
}

client::ClientOptions LoadServer::ClientOptionsFor(int index) const {
  client::ClientOptions options;
  options.target = target_;
  options.token = tokens_.empty() ? options_.token : tokens_.at(index + 1);
  options.timeout = std::chrono::seconds(60);
  return options;
}

int64_t LoadServer::RssKb() const {
  if (pid_ <= 0) return -1;
  std::ifstream status(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits.push_back(c);
      }
      int64_t kb = -1;
      return absl::SimpleAtoi(digits, &kb) ? kb : -1;
    }
  }
  return -1;
}

std::string LoadServer::UniqueName(const std::string& suffix) const {
  return absl::StrCat("load-", run_id_, "-", suffix);
}

absl::StatusOr<v1::SegmentRequest> TestImageRequest(const std::string& model, int size,
                                                    uint64_t seed, bool png) {
  data::Image image = data::Image::Create(size, size, 3);
  std::mt19937_64 rng(seed);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      for (int c = 0; c < 3; ++c) {
        const double v = 128 + 90 * std::sin(x * 0.2 + c + seed) * std::cos(y * 0.3 - c) +
                         static_cast<double>(rng() % 40) - 20;
        image.bytes[(static_cast<size_t>(y) * size + x) * 3 + c] =
            static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
      }
    }
  }
  v1::SegmentRequest request;
  request.mutable_model()->set_name(model);
  if (png) {
    auto encoded = data::EncodePng(image);
    if (!encoded.ok()) return encoded.status();
    request.mutable_image()->set_encoded(*encoded);
  } else {
    auto* raw = request.mutable_image()->mutable_raw();
    raw->set_height(size);
    raw->set_width(size);
    raw->set_channels(3);
    raw->set_dtype(v1::DTYPE_UINT8);
    raw->set_data(std::string(image.bytes.begin(), image.bytes.end()));
  }
  return request;
}

absl::StatusOr<std::string> GenerateTinyDataset(client::Client& client, const std::string& name,
                                                uint64_t seed) {
  auto stub = v1::Datasets::NewStub(client.channel());
  v1::GenerateDatasetRequest request;
  request.set_name(name);
  request.set_n(2);
  request.set_size(32);
  request.set_seed(seed);
  v1::Job job;
  auto context = client.NewContext();
  const grpc::Status status = stub->Generate(context.get(), request, &job);
  if (!status.ok()) return client::FromGrpcStatus(status);
  return job.job_id();
}

absl::Status WatchToEnd(client::Client& client, const std::string& job_id,
                        std::chrono::seconds timeout) {
  auto stub = v1::Training::NewStub(client.channel());
  auto context = client.NewStreamContext();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  v1::JobRef ref;
  ref.set_job_id(job_id);
  auto reader = stub->WatchJob(context.get(), ref);
  v1::JobEvent event;
  v1::Job last;
  bool terminal = false;
  while (reader->Read(&event)) {
    last = event.job();
    terminal = event.terminal();
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return client::FromGrpcStatus(status);
  if (!terminal || last.state() != v1::JOB_STATE_SUCCEEDED) {
    return absl::InternalError(absl::StrCat("job ", job_id, " ended in state ",
                                            v1::JobState_Name(last.state()), ": ", last.reason()));
  }
  return absl::OkStatus();
}

}  // namespace segserve::load
