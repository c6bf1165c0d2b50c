// File: tests/load/load_server.h — the server side of the load test: either a segserve it
// starts itself (loopback, temp data dir, a small test model, flags sized for the run) or
// one it is pointed at; the server's resident memory from /proc; and the small calls the
// run needs around the load (test images, tiny data-set jobs for watchers).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/lib/client.h"
#include "segserve/v1/segmentation.pb.h"
#include "tests/testing/server_process.h"

namespace segserve::load {

struct LoadServerOptions {
  std::string target;    // empty: start our own server.
  pid_t server_pid = 0;  // with `target`: for RSS readings (0 = none).
  std::string model = "load-l1";
  std::string token;  // with `target`: sent by every client.
  // Own server: bearer-token auth with one token per client (name load-client-<i>, role
  // segmenter; the control client is a trainer), as in production; false = --auth_disabled.
  bool auth = true;
  int max_queue = 256;  // own server: its --max_queue.
  int clients = 64;     // own server: tokens to make; with auth off it sizes the per-client
                        // stream limit (all clients share one identity, the loopback IP).
  std::vector<std::string> extra_flags;  // own server: appended last (they win).
};

class LoadServer {
 public:
  // Starts (or connects to) the server and waits until it reports SERVING.
  absl::Status Start(const LoadServerOptions& options);
  // Own server: SIGTERM, then "exit 0 after X s" or an error (a non-zero exit, a crash, or
  // no exit within the drain time plus a margin). Otherwise "not started here".
  absl::StatusOr<std::string> Stop();

  // Options for load client `index` (its own token with auth on); -1 = the control client.
  client::ClientOptions ClientOptionsFor(int index) const;
  // VmRSS of the server process in kB; -1 when unknown.
  int64_t RssKb() const;
  const std::string& model() const { return options_.model; }
  // Own server: its --max_queue; 0 when unknown (--target).
  int max_queue() const { return process_ != nullptr ? options_.max_queue : 0; }
  const std::string& description() const { return description_; }
  // A data-set name no earlier run against the same server used.
  std::string UniqueName(const std::string& suffix) const;

 private:
  // A tokens file for the control client and `clients` load clients; keeps the tokens.
  absl::StatusOr<std::string> WriteTokens(const std::string& path, int clients);

  LoadServerOptions options_;
  std::unique_ptr<testing::TempDir> dir_;
  std::unique_ptr<testing::ServerProcess> process_;
  std::string target_;
  pid_t pid_ = 0;
  std::string description_;
  std::string run_id_;
  std::vector<std::string> tokens_;  // own server with auth: [0] control, [1 + i] client i.
};

// A size x size RGB request for `model` (smooth structure plus noise from `seed`), as a
// raw tensor or PNG-encoded.
absl::StatusOr<v1::SegmentRequest> TestImageRequest(const std::string& model, int size,
                                                    uint64_t seed, bool png);

// Datasets.Generate of a 2-image 32x32 data set; returns the job id.
absl::StatusOr<std::string> GenerateTinyDataset(client::Client& client, const std::string& name,
                                                uint64_t seed);
// Training.WatchJob until the terminal event; OK when the job SUCCEEDED.
absl::Status WatchToEnd(client::Client& client, const std::string& job_id,
                        std::chrono::seconds timeout);

}  // namespace segserve::load
