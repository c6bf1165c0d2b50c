// A slow job database must not stall the serving path (issue 17): the real segserve binary,
// its real SQLite job store, and a second connection from this test that holds the
// database's write lock, so the server's job writes wait on their busy timeout exactly as
// they would on a slow or contended disk. While job RPCs are stuck behind that lock,
// health checks and Segment calls must still answer within a short deadline; once the lock
// is released, every stuck submission must complete and be in the store.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "client/lib/client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "segserve/v1/datasets.grpc.pb.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"
#include "server/data/codec.h"
#include "tests/testing/commands.h"
#include "tests/testing/model_fixture.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// What "promptly" means for calls that must not wait on the job database. Generous for a
// loaded, sanitized build; the server's SQLite busy timeout (5 s) is longer, and a stuck
// call on a gRPC thread holds the others for a multiple of it.
constexpr milliseconds kPrompt{2000};

// Holds the write lock of a SQLite database from a connection of this process, as another
// writer (or a disk that takes its time) would. In WAL mode readers still read.
class DatabaseWriteLock {
 public:
  explicit DatabaseWriteLock(const std::string& path) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK)
        << path;
    sqlite3_busy_timeout(db_, 10000);
    char* error = nullptr;
    held_ = sqlite3_exec(db_, "BEGIN EXCLUSIVE", nullptr, nullptr, &error) == SQLITE_OK;
    EXPECT_TRUE(held_) << (error ? error : "");
    sqlite3_free(error);
  }
  ~DatabaseWriteLock() {
    Release();
    sqlite3_close(db_);
  }
  DatabaseWriteLock(const DatabaseWriteLock&) = delete;
  DatabaseWriteLock& operator=(const DatabaseWriteLock&) = delete;

  bool held() const { return held_; }
  void Release() {
    if (!held_) return;
    held_ = false;
    EXPECT_EQ(sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  }

 private:
  sqlite3* db_ = nullptr;
  bool held_ = false;
};

model::UnetConfig SmallConfig() {
  model::UnetConfig config;
  config.encoder = model::EncoderKind::kResNet18;
  config.skip_prune_level = 1;
  config.in_channels = 3;
  config.classes = 3;
  return config;
}

v1::SegmentRequest SegmentRequest() {
  data::Image image = data::Image::Create(64, 64, 3);
  std::mt19937 rng(5);
  for (auto& byte : image.bytes) byte = static_cast<uint8_t>(rng());
  v1::SegmentRequest request;
  request.mutable_model()->set_name("plasmo-l1");
  request.mutable_image()->set_encoded(*data::EncodePng(image));
  return request;
}

std::string Describe(const grpc::Status& status) {
  return std::to_string(status.error_code()) + ": " + status.error_message();
}

class SlowStoreTest : public ::testing::Test {
 protected:
  void StartServer() {
    ASSERT_TRUE(testing::AddTestModel(dir_.path(), "plasmo-l1", SmallConfig(), 7).ok());
    // Training specs are validated against a data-set folder; an empty one is enough (the
    // jobs themselves fail when they run, which is not what this test looks at).
    std::filesystem::create_directories(dir_.path() + "/datasets/empty");
    auto server = testing::ServerProcess::Start(testing::SegserveBinary(), dir_.path(),
                                                {"--max_queued_jobs=1000"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ClientOptions options;
    options.target = server_->grpc_target();
    options.timeout = seconds(60);
    client_ = std::move(*client::Client::Create(options));
    auto health = client_->Health();
    for (int i = 0; i < 1200 && !(health.ok() && *health == client::ServingStatus::kServing); ++i) {
      std::this_thread::sleep_for(milliseconds(50));
      health = client_->Health();
    }
    ASSERT_TRUE(health.ok() && *health == client::ServingStatus::kServing);
    health_ = grpc::health::v1::Health::NewStub(client_->channel());
    segmentation_ = v1::Segmentation::NewStub(client_->channel());
    training_ = v1::Training::NewStub(client_->channel());
    datasets_ = v1::Datasets::NewStub(client_->channel());
  }

  std::unique_ptr<grpc::ClientContext> Context(milliseconds deadline) {
    auto context = client_->NewStreamContext();
    context->set_deadline(std::chrono::system_clock::now() + deadline);
    return context;
  }

  grpc::Status HealthCheck(milliseconds deadline) {
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    auto context = Context(deadline);
    grpc::Status status = health_->Check(context.get(), request, &response);
    if (status.ok() && response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not SERVING");
    }
    return status;
  }

  grpc::Status Segment(milliseconds deadline) {
    v1::SegmentResponse response;
    auto context = Context(deadline);
    return segmentation_->Segment(context.get(), SegmentRequest(), &response);
  }

  grpc::Status GetJob(const std::string& id, milliseconds deadline) {
    v1::JobRef ref;
    ref.set_job_id(id);
    v1::Job job;
    auto context = Context(deadline);
    return training_->GetJob(context.get(), ref, &job);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::unique_ptr<v1::Segmentation::Stub> segmentation_;
  std::unique_ptr<v1::Training::Stub> training_;
  std::unique_ptr<v1::Datasets::Stub> datasets_;
};

TEST_F(SlowStoreTest, HealthAndSegmentAnswerWhileJobRpcsWaitOnTheDatabase) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_TRUE(Segment(seconds(60)).ok());  // warm: the first forward pass may be slow

  // A finished job to read while the database is locked.
  v1::Job first;
  {
    auto context = Context(seconds(60));
    grpc::Status status =
        training_->SubmitTrain(context.get(), testing::TinyTrainSpec("empty", 1), &first);
    ASSERT_TRUE(status.ok()) << Describe(status);
  }
  EXPECT_EQ(testing::WatchUntilTerminal(*training_, first.job_id(), seconds(120)).state(),
            v1::JOB_STATE_FAILED);

  DatabaseWriteLock lock(dir_.path() + "/jobs.db");
  ASSERT_TRUE(lock.held());

  // More job RPCs than a gRPC server has callback threads, all of which touch the store.
  const int submissions =
      std::clamp(2 * static_cast<int>(std::thread::hardware_concurrency()) + 8, 12, 64);
  std::mutex mu;
  std::vector<std::string> accepted;  // job ids of submissions that succeeded
  std::vector<std::string> failures;
  std::atomic<int> submissions_done{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < submissions; ++i) {
    callers.emplace_back([&, i] {
      v1::Job job;
      auto context = Context(seconds(120));
      grpc::Status status;
      if (i % 4 == 3) {  // data-set generation (a SYNTH job)
        v1::GenerateDatasetRequest request;
        request.set_name("generated-" + std::to_string(i));
        request.set_n(2);
        request.set_size(32);
        status = datasets_->Generate(context.get(), request, &job);
      } else {
        v1::TrainSpec spec = testing::TinyTrainSpec("empty", 1);
        if (i % 4 == 2) spec.add_prune_levels(2);  // a sweep: one transaction, three jobs
        status = training_->SubmitTrain(context.get(), spec, &job);
      }
      submissions_done.fetch_add(1);
      std::lock_guard<std::mutex> guard(mu);
      if (status.ok()) {
        accepted.push_back(job.job_id());
      } else {
        failures.push_back("submission " + std::to_string(i) + ": " + Describe(status));
      }
    });
  }
  // Reads, a cancel and a watch wait behind the stuck writes too.
  std::atomic<int> others_failed{0};
  for (int i = 0; i < 2; ++i) {
    callers.emplace_back([&] {
      v1::ListJobsRequest request;
      v1::ListJobsResponse response;
      auto context = Context(seconds(120));
      if (!training_->ListJobs(context.get(), request, &response).ok()) others_failed++;
    });
    callers.emplace_back([&] {
      v1::JobRef ref;
      ref.set_job_id(first.job_id());
      v1::Job job;
      auto context = Context(seconds(120));
      if (!training_->CancelJob(context.get(), ref, &job).ok()) others_failed++;
    });
    callers.emplace_back([&] {
      const v1::Job watched = testing::WatchUntilTerminal(*training_, first.job_id(), seconds(120));
      if (watched.state() != v1::JOB_STATE_FAILED) others_failed++;
    });
  }

  // The store is stuck once a read of a finished job (which WAL lets through the lock)
  // cannot get past the writes queued in front of it.
  bool stuck = false;
  for (int i = 0; i < 200 && !stuck; ++i) {
    const grpc::Status status = GetJob(first.job_id(), milliseconds(500));
    stuck = status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!stuck) ASSERT_TRUE(status.ok()) << Describe(status);
  }
  ASSERT_TRUE(stuck) << "the job RPCs never waited on the locked database";

  // The serving path does not wait for the database.
  for (int i = 0; i < 3; ++i) {
    const grpc::Status health = HealthCheck(kPrompt);
    EXPECT_TRUE(health.ok()) << "health check " << i
                             << " while the job store is slow: " << Describe(health);
  }
  const grpc::Status segment = Segment(kPrompt);
  EXPECT_TRUE(segment.ok()) << "Segment while the job store is slow: " << Describe(segment);
  EXPECT_EQ(submissions_done.load(), 0) << "a submission finished while the database was locked";

  lock.Release();
  for (auto& caller : callers) caller.join();
  EXPECT_TRUE(failures.empty()) << failures.front();
  EXPECT_EQ(others_failed.load(), 0);
  ASSERT_EQ(static_cast<int>(accepted.size()), submissions);

  // Nothing accepted was lost: every accepted job is in the store.
  v1::ListJobsRequest request;
  request.set_page_size(1000);
  v1::ListJobsResponse response;
  auto context = Context(seconds(60));
  ASSERT_TRUE(training_->ListJobs(context.get(), request, &response).ok());
  std::set<std::string> stored;
  for (const auto& job : response.jobs()) stored.insert(job.job_id());
  for (const std::string& id : accepted) EXPECT_EQ(stored.count(id), 1u) << id;
  EXPECT_EQ(std::set<std::string>(accepted.begin(), accepted.end()).size(), accepted.size());
}

}  // namespace
}  // namespace segserve
