// `segctl bench`: a closed-loop (or rate-limited) load generator for Segment.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/lib/http_get.h"
#include "client/segctl/args.h"
#include "client/segctl/commands.h"
#include "segserve/v1/segmentation.grpc.pb.h"

namespace segserve::segctl {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kBenchUsage[] =
    "usage: segctl bench --model MODEL [--concurrency 8] [--duration 10] [--size 256]\n"
    "                    [--channels 3] [--rate 0] [--warmup 2] [--metrics HOST:PORT]\n"
    "  Sends raw-tensor Segment calls of SIZE x SIZE random images from CONCURRENCY\n"
    "  clients for DURATION seconds (after WARMUP seconds not counted). --rate caps the\n"
    "  total request rate (requests/s; 0 = as fast as answers come back). Prints images/s,\n"
    "  latency p50/p90/p99 and, with --metrics, the server's batch-size distribution.\n";

// Cumulative `segserve_inference_batch_size_bucket{le=...}` counts from an exposition.
std::map<double, double> BatchBuckets(const std::string& exposition) {
  std::map<double, double> buckets;
  std::istringstream lines(exposition);
  std::string line;
  const std::string prefix = "segserve_inference_batch_size_bucket{le=\"";
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    const auto end = line.find('"', prefix.size());
    const std::string le = line.substr(prefix.size(), end - prefix.size());
    double bound = 1e9;
    if (le != "+Inf" && !absl::SimpleAtod(le, &bound)) continue;
    double value = 0;
    if (!absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) continue;
    buckets[bound] = value;
  }
  return buckets;
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[index];
}

}  // namespace

int RunBench(const GlobalOptions& global, const std::vector<std::string>& argv,
             std::ostream& out, std::ostream& err) {
  auto args = Args::Parse(
      argv, {"model", "concurrency", "duration", "size", "channels", "rate", "warmup", "metrics"},
      {"help"});
  if (!args.ok()) {
    err << "segctl bench: " << args.status().message() << "\n" << kBenchUsage;
    return kExitUsage;
  }
  if (args->Has("help")) {
    out << kBenchUsage;
    return kExitOk;
  }
  auto concurrency = args->GetInt("concurrency", 8);
  auto duration = args->GetDouble("duration", 10);
  auto size = args->GetInt("size", 256);
  auto channels = args->GetInt("channels", 3);
  auto rate = args->GetDouble("rate", 0);
  auto warmup = args->GetDouble("warmup", 2);
  for (const absl::Status& s : {concurrency.status(), duration.status(), size.status(),
                                channels.status(), rate.status(), warmup.status()}) {
    if (!s.ok()) {
      err << "segctl bench: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  if (!args->Has("model") || *concurrency < 1 || *concurrency > 1024 || *duration <= 0 ||
      *size < 1 || *channels < 1 || *channels > 4 || *rate < 0 || *warmup < 0) {
    err << "segctl bench: --model is required; concurrency 1..1024, duration > 0\n"
        << kBenchUsage;
    return kExitUsage;
  }
  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());

  v1::SegmentRequest request;
  request.mutable_model()->set_name(args->Get("model"));
  request.mutable_options()->set_mask_encoding(v1::MASK_RAW);
  auto* raw = request.mutable_image()->mutable_raw();
  raw->set_height(static_cast<int>(*size));
  raw->set_width(static_cast<int>(*size));
  raw->set_channels(static_cast<int>(*channels));
  raw->set_dtype(v1::DTYPE_UINT8);
  std::string pixels(static_cast<size_t>(*size * *size * *channels), '\0');
  std::mt19937 rng(1);
  for (char& p : pixels) p = static_cast<char>(rng() & 0xff);
  raw->set_data(pixels);

  std::string metrics_host;
  int metrics_port = 0;
  if (args->Has("metrics")) {
    const std::string target = args->Get("metrics");
    const auto colon = target.rfind(':');
    metrics_host = target.substr(0, colon);
    if (metrics_host == "localhost") metrics_host = "127.0.0.1";
    if (colon == std::string::npos || !absl::SimpleAtoi(target.substr(colon + 1), &metrics_port)) {
      err << "segctl bench: --metrics must be HOST:PORT\n";
      return kExitUsage;
    }
  }

  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::milliseconds(static_cast<int64_t>(*warmup * 1000));
  const auto stop_at = measure_from + std::chrono::milliseconds(static_cast<int64_t>(*duration * 1000));
  const double interval = *rate > 0 ? 1.0 / *rate : 0;
  std::atomic<int64_t> ticket{0};
  std::mutex mu;
  std::vector<double> latencies;
  std::map<std::string, int64_t> errors;
  std::map<double, double> buckets_before;
  bool scraped_before = false;
  std::atomic<bool> measuring{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < *concurrency; ++w) {
    workers.emplace_back([&] {
      auto stub = v1::Segmentation::NewStub((*client)->channel());
      while (true) {
        if (interval > 0) {
          const auto slot = start + std::chrono::microseconds(static_cast<int64_t>(
                                        ticket.fetch_add(1) * interval * 1e6));
          std::this_thread::sleep_until(slot);
        }
        const auto sent = Clock::now();
        if (sent >= stop_at) return;
        v1::SegmentResponse response;
        auto context = (*client)->NewContext();
        const grpc::Status status = stub->Segment(context.get(), request, &response);
        const auto received = Clock::now();
        if (sent < measure_from) continue;
        std::lock_guard<std::mutex> lock(mu);
        if (!scraped_before && !metrics_host.empty()) {
          scraped_before = true;
          auto body = client::HttpGet(metrics_host, metrics_port, "/metrics");
          if (body.ok()) buckets_before = BatchBuckets(*body);
        }
        if (status.ok()) {
          latencies.push_back(std::chrono::duration<double>(received - sent).count());
        } else {
          ++errors[absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()))];
        }
      }
    });
  }
  for (auto& worker : workers) worker.join();
  (void)measuring;
  std::sort(latencies.begin(), latencies.end());
  const double images_per_second = latencies.size() / *duration;
  out << std::fixed << std::setprecision(2) << "model " << args->Get("model") << "  "
      << *size << "x" << *size << "x" << *channels << "  concurrency " << *concurrency
      << (interval > 0 ? absl::StrCat("  rate ", *rate, "/s") : "") << "\n";
  out << "images/s " << images_per_second << "  (" << latencies.size() << " ok in " << *duration
      << " s)\n";
  out << std::setprecision(1) << "latency ms  p50 " << Percentile(latencies, 0.50) * 1000
      << "  p90 " << Percentile(latencies, 0.90) * 1000 << "  p99 "
      << Percentile(latencies, 0.99) * 1000 << "\n";
  for (const auto& [code, count] : errors) out << "errors " << code << " " << count << "\n";
  if (!metrics_host.empty()) {
    auto body = client::HttpGet(metrics_host, metrics_port, "/metrics");
    if (!body.ok()) return ReportError(err, body.status());
    const auto after = BatchBuckets(*body);
    out << "server batch sizes:";
    double previous = 0, total = 0;
    for (const auto& [bound, count] : after) {
      total = count - (buckets_before.count(bound) ? buckets_before.at(bound) : 0);
    }
    for (const auto& [bound, count] : after) {
      const double delta = count - (buckets_before.count(bound) ? buckets_before.at(bound) : 0);
      if (delta - previous > 0 && total > 0) {
        out << "  <=" << (bound >= 1e9 ? std::string("inf") : absl::StrCat(bound)) << ": "
            << std::setprecision(0) << 100.0 * (delta - previous) / total << "%";
      }
      previous = delta;
    }
    out << "\n";
  }
  return errors.empty() ? kExitOk : kExitError;
}

}  // namespace segserve::segctl
