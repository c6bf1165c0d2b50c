// segserve_load: the load check of issue 9. Many clients (default 64), each on its own
// connection, mix Segment, SegmentStream, Models.List and Training.WatchJob against the
// real segserve over loopback for a bounded time; then a deliberate overload (more
// streamed images than the batcher's queue holds) and a recovery phase. Fails (exit 1) on
// any answer other than OK or RESOURCE_EXHAUSTED (the latter only while overloaded), on
// a broken answer, on RSS growth between warm-up and the end of the run (idle: beyond
// --rss_tolerance; still busy: beyond --rss_busy_tolerance), or when the server does not
// shut down cleanly. Prints a summary and one `LOAD_RESULT {json}` line.
//
// Why two tolerances: the server keeps its tensor heap while busy and gives the free part
// back after a second without a batch (server/model/tensor_memory.h). So a leak survives
// into the idle reading, which is judged strictly; the busy reading is the heap's
// high-water mark of in-flight work, which may grow while the shared heap settles, and is
// only bounded.
#include <signal.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tests/load/load_client.h"
#include "tests/load/load_server.h"

ABSL_FLAG(std::string, target, "",
          "host:port of a running segserve; empty = start build/server/app/segserve on "
          "loopback with a temp data dir and a small test model.");
ABSL_FLAG(int, server_pid, 0, "With --target: the server's pid, for RSS (0 = no RSS check).");
ABSL_FLAG(std::string, model, "load-l1",
          "Model to segment with (with --target it must exist and be loaded).");
ABSL_FLAG(std::string, server_flags, "",
          "Extra flags for the started server, comma-separated (e.g. --threads=2).");
ABSL_FLAG(std::string, token, "", "With --target: bearer token for every call.");
ABSL_FLAG(bool, auth, true,
          "Own server: bearer-token auth, one token per client (false: --auth_disabled, all "
          "clients are one identity for the per-client stream limit, which is raised).");
ABSL_FLAG(int, clients, 64, "Concurrent clients, each with its own connection. 1..1024.");
ABSL_FLAG(double, duration_s, 60, "Measured phase, seconds.");
ABSL_FLAG(double, warmup_s, 10, "Warm-up before the measured phase (RSS baseline at its end).");
ABSL_FLAG(double, idle_s, 5, "Idle time after the run before the idle RSS reading.");
ABSL_FLAG(double, overload_s, -1,
          "Deliberate overload phase, seconds; 0 = skip; -1 = 5 s with our own server, skip "
          "with --target.");
ABSL_FLAG(double, recovery_s, 5, "Normal load after the overload; must be error-free.");
ABSL_FLAG(std::string, mix, "segment=4,stream=2,list=2,watch=2", "Operation weights.");
ABSL_FLAG(int, image_size, 32, "Side of the square test images (pixels).");
ABSL_FLAG(int, stream_images, 4, "Images per SegmentStream call.");
ABSL_FLAG(int, overload_stream_images, 16, "Images per SegmentStream call while overloading.");
ABSL_FLAG(int, max_queue, 0,
          "--max_queue of the started server; 0 = clients x stream_images, the most the "
          "normal mix can queue (the overload streams overload_stream_images per client).");
ABSL_FLAG(double, timeout_s, 60, "Deadline of every call.");
ABSL_FLAG(double, job_interval_s, 1, "A tiny Datasets.Generate job this often, for watchers.");
ABSL_FLAG(double, rss_tolerance, 0.10,
          "Largest allowed RSS growth from warm-up to the idle reading after the run "
          "(fraction).");
ABSL_FLAG(double, rss_busy_tolerance, 0.25,
          "Largest allowed RSS growth from warm-up to the end of the run, still busy "
          "(fraction).");
ABSL_FLAG(std::string, json_out, "", "Also write the result JSON to this file.");

namespace segserve::load {
namespace {

using Clock = std::chrono::steady_clock;

void SleepFor(double seconds) {
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
}

// Square images with smooth structure plus noise, raw and PNG-encoded alternately.
absl::StatusOr<std::vector<v1::SegmentRequest>> MakeImages(const std::string& model, int size,
                                                           int count, uint64_t seed) {
  std::vector<v1::SegmentRequest> requests;
  for (int i = 0; i < count; ++i) {
    auto request = TestImageRequest(model, size, seed + i, /*png=*/i % 2 == 1);
    if (!request.ok()) return request.status();
    requests.push_back(std::move(*request));
  }
  return requests;
}

struct PhaseResult {
  Recorder recorder;
  double seconds = 0;
};

class LoadRun {
 public:
  int Main();

 private:
  absl::Status Setup();
  // Runs every client with `mix`/`workload`; `phases` are (phase, seconds) in order.
  void RunPhases(const Mix& mix, const Workload& workload,
                 const std::vector<std::pair<Phase, double>>& phases);
  void Feed(const std::atomic<bool>& stop);
  void SampleRss(const std::atomic<bool>& stop);
  int64_t Rss() const { return server_.RssKb(); }
  // Merges the clients' records, then lets the clients go (idle connections would hold
  // the server's graceful shutdown until its drain deadline).
  void Collect();
  int Report();

  LoadServer server_;
  JobFeed jobs_;
  std::unique_ptr<client::Client> control_;
  std::vector<std::unique_ptr<LoadClient>> clients_;
  Recorder control_recorders_[kPhases];  // Generate calls, by phase.
  Recorder phases_[kPhases];             // everything, merged by Collect.
  int64_t violations_ = 0;
  std::string first_violation_;
  std::atomic<int> phase_{kWarmup};
  double phase_seconds_[kPhases] = {0, 0, 0, 0};
  int64_t rss_warm_kb_ = -1, rss_end_kb_ = -1, rss_idle_kb_ = -1, rss_recovered_kb_ = -1;
  std::vector<int64_t> rss_samples_kb_;  // one per second of the warm-up and measured run.
  std::mutex rss_mu_;
  int64_t generated_ = 0;
  std::vector<std::string> failures_;
  std::string shutdown_;
  double overload_s_ = 0;
};

absl::Status LoadRun::Setup() {
  LoadServerOptions options;
  options.target = absl::GetFlag(FLAGS_target);
  options.server_pid = absl::GetFlag(FLAGS_server_pid);
  options.model = absl::GetFlag(FLAGS_model);
  options.token = absl::GetFlag(FLAGS_token);
  options.auth = absl::GetFlag(FLAGS_auth);
  options.max_queue = absl::GetFlag(FLAGS_max_queue) > 0
                          ? absl::GetFlag(FLAGS_max_queue)
                          : absl::GetFlag(FLAGS_clients) * absl::GetFlag(FLAGS_stream_images);
  options.clients = absl::GetFlag(FLAGS_clients);
  for (absl::string_view flag :
       absl::StrSplit(absl::GetFlag(FLAGS_server_flags), ',', absl::SkipWhitespace())) {
    options.extra_flags.emplace_back(flag);
  }
  overload_s_ = absl::GetFlag(FLAGS_overload_s);
  if (overload_s_ < 0) overload_s_ = options.target.empty() ? 5 : 0;
  if (absl::Status s = server_.Start(options); !s.ok()) return s;
  std::cout << "server: " << server_.description() << "\n" << std::flush;
  auto control = client::Client::Create(server_.ClientOptionsFor(-1));
  if (!control.ok()) return control.status();
  control_ = std::move(*control);
  // One finished job to watch: a tiny data set, watched to its end.
  auto job = GenerateTinyDataset(*control_, server_.UniqueName("seed"), 1);
  if (!job.ok()) return job.status();
  auto watched = WatchToEnd(*control_, *job, std::chrono::seconds(120));
  if (!watched.ok()) return watched;
  jobs_.SetFinished(*job);
  for (int i = 0; i < absl::GetFlag(FLAGS_clients); ++i) {
    auto c = LoadClient::Create(i, server_.ClientOptionsFor(i), jobs_);
    if (!c.ok()) return c.status();
    clients_.push_back(std::move(*c));
  }
  return absl::OkStatus();
}

void LoadRun::Feed(const std::atomic<bool>& stop) {
  const double interval = absl::GetFlag(FLAGS_job_interval_s);
  if (interval <= 0) return;
  auto next = Clock::now();
  while (!stop.load()) {
    const auto start = Clock::now();
    auto job = GenerateTinyDataset(*control_, server_.UniqueName(absl::StrCat("g", generated_)),
                                   static_cast<uint64_t>(generated_ + 2));
    ++generated_;
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    control_recorders_[phase_.load()].Record(
        Kind::kGenerate, static_cast<grpc::StatusCode>(job.status().code()), ms);
    if (job.ok()) jobs_.SetLatest(*job);
    next += std::chrono::milliseconds(static_cast<int64_t>(interval * 1000));
    while (!stop.load() && Clock::now() < next) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

void LoadRun::SampleRss(const std::atomic<bool>& stop) {
  auto next = Clock::now();
  while (!stop.load()) {
    if (Clock::now() >= next) {
      const int64_t kb = Rss();
      std::lock_guard<std::mutex> lock(rss_mu_);
      rss_samples_kb_.push_back(kb);
      next += std::chrono::seconds(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void LoadRun::RunPhases(const Mix& mix, const Workload& workload,
                        const std::vector<std::pair<Phase, double>>& phases) {
  std::atomic<bool> stop{false};
  phase_ = phases.front().first;
  std::vector<std::thread> threads;
  for (auto& c : clients_) {
    threads.emplace_back([&, client = c.get()] { client->Run(mix, workload, stop, phase_); });
  }
  std::thread feeder([&] { Feed(stop); });
  std::thread sampler;
  if (phases.front().first == kWarmup) sampler = std::thread([&] { SampleRss(stop); });
  for (size_t i = 0; i < phases.size(); ++i) {
    phase_ = phases[i].first;
    const auto start = Clock::now();
    SleepFor(phases[i].second);
    if (phases[i].first == kWarmup) rss_warm_kb_ = Rss();
    if (phases[i].first == kMain) rss_end_kb_ = Rss();
    if (phases[i].first == kRecovery) rss_recovered_kb_ = Rss();
    phase_seconds_[phases[i].first] += std::chrono::duration<double>(Clock::now() - start).count();
  }
  stop = true;
  for (auto& t : threads) t.join();
  feeder.join();
  if (sampler.joinable()) sampler.join();
}

int LoadRun::Main() {
  if (absl::Status s = Setup(); !s.ok()) {
    std::cerr << "segserve_load: setup failed: " << s << "\n";
    return 1;
  }
  auto mix = ParseMix(absl::GetFlag(FLAGS_mix));
  if (!mix.ok()) {
    std::cerr << "segserve_load: " << mix.status().message() << "\n";
    return 2;
  }
  const int size = absl::GetFlag(FLAGS_image_size);
  const auto timeout =
      std::chrono::milliseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_timeout_s) * 1000));
  Workload normal;
  auto images = MakeImages(server_.model(), size, 16, 1);
  if (!images.ok()) {
    std::cerr << "segserve_load: " << images.status() << "\n";
    return 1;
  }
  normal.images = std::move(*images);
  normal.stream_images = absl::GetFlag(FLAGS_stream_images);
  normal.timeout = timeout;

  std::cout << "load: " << clients_.size() << " clients, warm-up " << absl::GetFlag(FLAGS_warmup_s)
            << " s, measured " << absl::GetFlag(FLAGS_duration_s) << " s, mix "
            << absl::GetFlag(FLAGS_mix) << ", " << size << "x" << size << " images\n"
            << std::flush;
  RunPhases(*mix, normal,
            {{kWarmup, absl::GetFlag(FLAGS_warmup_s)}, {kMain, absl::GetFlag(FLAGS_duration_s)}});
  SleepFor(absl::GetFlag(FLAGS_idle_s));
  rss_idle_kb_ = Rss();

  if (overload_s_ > 0) {
    // Every client streams more images at once than the queue holds in total (plus
    // unary calls): the batcher must answer RESOURCE_EXHAUSTED at once, nothing else.
    Workload flood = normal;
    flood.stream_images = absl::GetFlag(FLAGS_overload_stream_images);
    std::cout << "overload: " << clients_.size() << " clients x " << flood.stream_images
              << " streamed images"
              << (server_.max_queue() > 0
                      ? absl::StrCat(" against --max_queue=", server_.max_queue())
                      : std::string())
              << "\n"
              << std::flush;
    RunPhases(Mix{1, 3, 0, 0}, flood, {{kOverload, overload_s_}});
    RunPhases(*mix, normal, {{kRecovery, absl::GetFlag(FLAGS_recovery_s)}});
  }
  Collect();
  auto stopped = server_.Stop();
  shutdown_ = stopped.ok() ? *stopped : stopped.status().ToString();
  if (!stopped.ok()) failures_.push_back(absl::StrCat("shutdown: ", stopped.status().message()));
  return Report();
}

void LoadRun::Collect() {
  for (int p = 0; p < kPhases; ++p) phases_[p].Merge(control_recorders_[p]);
  for (auto& c : clients_) {
    for (int p = 0; p < kPhases; ++p) phases_[p].Merge(c->recorder(p));
    violations_ += c->violations();
    if (first_violation_.empty()) first_violation_ = c->first_violation();
  }
  clients_.clear();
  control_.reset();
}

int LoadRun::Report() {
  const double tolerance = absl::GetFlag(FLAGS_rss_tolerance);
  const std::vector<grpc::StatusCode> none;
  const std::vector<grpc::StatusCode> exhausted = {grpc::StatusCode::RESOURCE_EXHAUSTED};
  // RESOURCE_EXHAUSTED is an answer the contract allows whenever the server is loaded;
  // in recovery it would mean the server did not recover.
  for (int p : {kWarmup, kMain, kOverload}) {
    const int64_t bad = UnexpectedErrors(phases_[p], exhausted);
    if (bad > 0) failures_.push_back(absl::StrCat(PhaseName(p), ": ", bad, " unexpected errors"));
  }
  if (int64_t bad = UnexpectedErrors(phases_[kRecovery], none); bad > 0) {
    failures_.push_back(absl::StrCat("recovery: ", bad, " errors after the overload"));
  }
  if (violations_ > 0) {
    failures_.push_back(absl::StrCat(violations_, " contract violations, e.g. ", first_violation_));
  }
  const Recorder& overload = phases_[kOverload];
  int64_t overload_exhausted = 0;
  for (Kind k : {Kind::kSegment, Kind::kStreamItem}) {
    const auto& codes = overload.of(k).codes;
    auto it = codes.find(static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
    if (it != codes.end()) overload_exhausted += it->second;
  }
  if (overload_s_ > 0 && overload_exhausted == 0) {
    failures_.push_back("overload: no RESOURCE_EXHAUSTED answer (the overload did not overload)");
  }
  double rss_ratio = -1, rss_idle_ratio = -1;
  if (rss_warm_kb_ > 0 && rss_end_kb_ > 0) {
    rss_ratio = static_cast<double>(rss_end_kb_) / rss_warm_kb_;
    rss_idle_ratio = static_cast<double>(rss_idle_kb_) / rss_warm_kb_;
    const double busy_tolerance = absl::GetFlag(FLAGS_rss_busy_tolerance);
    if (rss_ratio > 1 + busy_tolerance || rss_idle_ratio > 1 + tolerance) {
      failures_.push_back(absl::StrCat(
          "RSS grew: ", rss_warm_kb_, " kB after warm-up, ", rss_end_kb_, " kB after the run ",
          "(tolerance ", busy_tolerance * 100, "%), ", rss_idle_kb_, " kB after idle (tolerance ",
          tolerance * 100, "%)"));
    }
  }

  std::cout << "\n";
  for (int p = 0; p < kPhases; ++p) {
    if (phase_seconds_[p] <= 0) continue;
    std::cout << PhaseName(p) << " (" << static_cast<int>(phase_seconds_[p] + 0.5) << " s)\n"
              << ToText(phases_[p], phase_seconds_[p]);
  }
  auto mb = [](int64_t kb) { return kb < 0 ? std::string("n/a") : absl::StrCat(kb / 1024, " MB"); };
  std::cout << "server RSS: after warm-up " << mb(rss_warm_kb_) << ", after the run "
            << mb(rss_end_kb_) << ", after " << absl::GetFlag(FLAGS_idle_s) << " s idle "
            << mb(rss_idle_kb_) << ", after recovery " << mb(rss_recovered_kb_);
  if (rss_ratio > 0) {
    std::cout << "  (run/warm-up " << absl::StrFormat("%.3f", rss_ratio) << ", idle/warm-up "
              << absl::StrFormat("%.3f", rss_idle_ratio) << ")";
  }
  std::cout << "\nshutdown: " << shutdown_ << "\n";

  nlohmann::json result = {{"clients", absl::GetFlag(FLAGS_clients)},
                           {"mix", absl::GetFlag(FLAGS_mix)},
                           {"image_size", absl::GetFlag(FLAGS_image_size)},
                           {"server", server_.description()},
                           {"shutdown", shutdown_},
                           {"violations", violations_},
                           {"generate_jobs", generated_},
                           {"rss_kb",
                            {{"after_warmup", rss_warm_kb_},
                             {"after_run", rss_end_kb_},
                             {"after_idle", rss_idle_kb_},
                             {"after_recovery", rss_recovered_kb_},
                             {"run_over_warmup", std::round(rss_ratio * 1000) / 1000},
                             {"idle_over_warmup", std::round(rss_idle_ratio * 1000) / 1000},
                             {"samples_mb", nlohmann::json::array()}}},
                           {"failures", failures_},
                           {"ok", failures_.empty()}};
  {
    std::lock_guard<std::mutex> lock(rss_mu_);
    for (int64_t kb : rss_samples_kb_) result["rss_kb"]["samples_mb"].push_back(kb / 1024);
  }
  for (int p = 0; p < kPhases; ++p) {
    if (phase_seconds_[p] <= 0) continue;
    result["phases"][PhaseName(p)] = {{"seconds", std::round(phase_seconds_[p] * 10) / 10},
                                      {"kinds", ToJson(phases_[p], phase_seconds_[p])}};
  }
  std::cout << "LOAD_RESULT " << result.dump() << "\n";
  if (const std::string path = absl::GetFlag(FLAGS_json_out); !path.empty()) {
    std::ofstream(path) << result.dump(2) << "\n";
  }
  for (const auto& f : failures_) std::cout << "FAIL: " << f << "\n";
  std::cout << (failures_.empty() ? "PASS" : "FAIL") << "\n";
  return failures_.empty() ? 0 : 1;
}

}  // namespace
}  // namespace segserve::load

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "segserve_load: the load check of issue 9 (see tests/load/run.sh and "
      "docs/RELIABILITY.md, Load).");
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  const int clients = absl::GetFlag(FLAGS_clients);
  if (clients < 1 || clients > 1024 || absl::GetFlag(FLAGS_duration_s) <= 0 ||
      absl::GetFlag(FLAGS_warmup_s) <= 0 || absl::GetFlag(FLAGS_image_size) < 1 ||
      absl::GetFlag(FLAGS_stream_images) < 1 || absl::GetFlag(FLAGS_overload_stream_images) < 1) {
    std::cerr << "segserve_load: --clients 1..1024, --duration_s and --warmup_s > 0, "
                 "--image_size and the stream image counts >= 1\n";
    return 2;
  }
  segserve::load::LoadRun run;
  return run.Main();
}
