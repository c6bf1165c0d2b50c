// File: tests/integration/fault_harness.h — what the fault-injection suite (fault_test.cc)
// needs beyond ServerProcess: a fixture holding a running segserve with typed stubs and job,
// model and metric helpers; a directory watch (inotify) to kill the server at exact steps of
// a write; a small tmpfs as a data dir for disk-full runs; byte-level file corruption.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/lib/client.h"
#include "gtest/gtest.h"
#include "segserve/v1/datasets.grpc.pb.h"
#include "segserve/v1/models.grpc.pb.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"
#include "server/model/model_config.h"
#include "tests/testing/server_process.h"

namespace segserve::fault {

// Puts the tests into a private mount namespace, so a test can mount a tmpfs without
// touching the host's mounts. Call it first thing in main. Privileged (root), this process
// enters one and -1 is returned: go on. Otherwise the binary is re-executed in a child that
// entered a user and a mount namespace (the kernel refuses that to a threaded process, and
// libraries start threads before main); the child's exit code is returned, to be returned
// from main. When neither works, -1 and PrivateMounts() says why.
int EnterPrivateMountNamespace(char** argv);
const absl::Status& PrivateMounts();

// A tmpfs of `bytes` mounted over the directory `path`; lazily unmounted on destruction.
// Unavailable (with the reasons) when neither the private namespace nor a plain root
// mount allows it.
class TmpfsMount {
 public:
  static absl::StatusOr<std::unique_ptr<TmpfsMount>> Mount(const std::string& path, int64_t bytes);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

 private:
  explicit TmpfsMount(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// Writes `path` until its file system has no free byte left; returns the bytes written.
absl::StatusOr<int64_t> FillDisk(const std::string& path);

// Overwrites `length` bytes of `path` at `offset` with `byte` (offset < 0: the middle).
absl::Status Overwrite(const std::string& path, int64_t offset, int64_t length, char byte);

// SHA-256 of a file's bytes ("" when unreadable).
std::string FileDigest(const std::string& path);

// "<code>: <message>" of a gRPC status, for failure messages.
std::string StatusText(const grpc::Status& status);

// Prints "[fault] <line>" at once (the figures docs/RELIABILITY.md quotes).
void Report(const std::string& line);

// Names in `dir` starting with `prefix`.
std::vector<std::string> EntriesWithPrefix(const std::string& dir, const std::string& prefix);

// Entries appearing in one directory, seen through inotify: no polling, no sleeps.
class DirWatch {
 public:
  static absl::StatusOr<std::unique_ptr<DirWatch>> Create(const std::string& dir);
  ~DirWatch();
  DirWatch(const DirWatch&) = delete;
  DirWatch& operator=(const DirWatch&) = delete;

  // Watches `dir` as well (e.g. a temporary directory that just appeared).
  absl::Status Add(const std::string& dir);

  // Waits until an entry whose name starts with `prefix` is created (mkdir, create) in a
  // watched directory or, with `renamed`, is renamed into one. Returns its name;
  // DeadlineExceeded otherwise.
  absl::StatusOr<std::string> WaitFor(const std::string& prefix, bool renamed,
                                      std::chrono::milliseconds timeout);

 private:
  explicit DirWatch(int fd) : fd_(fd) {}
  int fd_;
};

// The small model the suite imports and serves (ResNet18, L1, 3 classes).
model::UnetConfig SmallConfig();

// A running segserve over a temp data dir (or a tmpfs mounted there), with stubs.
class FaultTest : public ::testing::Test {
 protected:
  FaultTest();

  // Starts segserve on data_dir_ and waits until health is SERVING.
  void StartServer(const std::vector<std::string>& flags = {});
  // SIGKILL; expects the process to die by the signal.
  void Kill();
  // SIGTERM; expects exit code 0 (the job store is closed cleanly).
  void StopGracefully();

  std::string ModelsDir() const { return data_dir_ + "/models"; }

  // `import_id` (optional): the idempotency key (ImportModelRequest.import_id).
  grpc::Status Import(const std::string& name, const std::string& state_dict, bool load,
                      v1::ModelInfo* info, const std::string& import_id = "");
  grpc::Status ListModels(v1::ListModelsResponse* response);
  grpc::Status GetModel(const std::string& name, int64_t version, v1::ModelInfo* info);
  grpc::Status LoadModel(const std::string& name, int64_t version);
  // A 64x64 RGB image through Segment; `response` may be null.
  grpc::Status Segment(const std::string& name, int64_t version,
                       v1::SegmentResponse* response = nullptr);

  grpc::Status Generate(const std::string& name, int n, v1::Job* job);
  grpc::Status ListDatasets(v1::ListDatasetsResponse* response);
  grpc::Status SubmitTrain(const v1::TrainSpec& spec, v1::Job* job);
  grpc::Status GetJob(const std::string& id, v1::Job* job);
  grpc::Status ListJobs(v1::ListJobsResponse* response);
  // Follows a job to its terminal event (the stream's last job when it ends early);
  // `on_event` sees every event.
  v1::Job WaitTerminal(const std::string& id,
                       const std::function<void(const v1::JobEvent&)>& on_event = nullptr);
  // Generates a data set of `n` 64x64 images and waits for it.
  void MakeDataset(const std::string& name, int n);
  // One ResNet18 L1 configuration, 64x64 crops, batch 4, at most `steps` steps per epoch.
  static v1::TrainSpec TinySpec(const std::string& dataset, int epochs, int steps);

  // A sample of /metrics, -1 when absent, -2 when the scrape failed.
  double Metric(const std::string& series);

  testing::TempDir dir_;
  std::string data_dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<v1::Models::Stub> models_;
  std::unique_ptr<v1::Segmentation::Stub> segmentation_;
  std::unique_ptr<v1::Training::Stub> training_;
  std::unique_ptr<v1::Datasets::Stub> datasets_;
};

}  // namespace segserve::fault
