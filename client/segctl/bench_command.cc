// `segctl bench`: a closed-loop (or rate-limited) load generator for Segment, or for the
// Open Inference Protocol's ModelInfer with the same image (--api oip), to compare the two.
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
#include "client/segctl/commands.h"
#include "inference/open_inference.grpc.pb.h"
#include "segserve/v1/segmentation.grpc.pb.h"

namespace segserve::segctl {
namespace {

using Clock = std::chrono::steady_clock;

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


struct Options {
  std::string model, api = "segment";
  int concurrency = 8, size = 256, channels = 3;
  double duration = 10, rate = 0, warmup = 2;
  std::string metrics;
};

int Bench(const Options& o, const GlobalOptions& global, std::ostream& out, std::ostream& err) {
  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());

  v1::SegmentRequest request;
  request.mutable_model()->set_name(o.model);
  request.mutable_options()->set_mask_encoding(v1::MASK_RAW);
  auto* raw = request.mutable_image()->mutable_raw();
  raw->set_height(o.size);
  raw->set_width(o.size);
  raw->set_channels(o.channels);
  raw->set_dtype(v1::DTYPE_UINT8);
  std::string pixels(static_cast<size_t>(o.size * o.size * o.channels), '\0');
  std::mt19937 rng(1);
  for (char& p : pixels) p = static_cast<char>(rng() & 0xff);
  raw->set_data(pixels);
  // The same image as an OIP request: UINT8 NHWC, the mask output (Segment's MASK_RAW).
  ::inference::ModelInferRequest infer;
  {
    const auto colon = o.model.rfind(':');
    infer.set_model_name(o.model.substr(0, colon));
    if (colon != std::string::npos) infer.set_model_version(o.model.substr(colon + 1));
    auto* input = infer.add_inputs();
    input->set_name("image");
    input->set_datatype("UINT8");
    for (int64_t d : {1, o.size, o.size, o.channels}) input->add_shape(d);
    infer.add_raw_input_contents(pixels);
    infer.add_outputs()->set_name("mask");
  }
  const bool oip = o.api == "oip";

  std::string metrics_host;
  int metrics_port = 0;
  if (!o.metrics.empty()) {  // HOST:PORT, checked while parsing
    const auto colon = o.metrics.rfind(':');
    metrics_host = o.metrics.substr(0, colon);
    if (metrics_host == "localhost") metrics_host = "127.0.0.1";
    if (!absl::SimpleAtoi(o.metrics.substr(colon + 1), &metrics_port)) metrics_port = 0;
  }

  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::milliseconds(static_cast<int64_t>(o.warmup * 1000));
  const auto stop_at = measure_from + std::chrono::milliseconds(static_cast<int64_t>(o.duration * 1000));
  const double interval = o.rate > 0 ? 1.0 / o.rate : 0;
  std::atomic<int64_t> ticket{0};
  std::mutex mu;
  std::vector<double> latencies;
  std::map<std::string, int64_t> errors;
  std::map<double, double> buckets_before;
  bool scraped_before = false;
  std::atomic<bool> measuring{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < o.concurrency; ++w) {
    workers.emplace_back([&] {
      auto stub = v1::Segmentation::NewStub((*client)->channel());
      auto oip_stub = ::inference::GRPCInferenceService::NewStub((*client)->channel());
      while (true) {
        if (interval > 0) {
          const auto slot = start + std::chrono::microseconds(static_cast<int64_t>(
                                        ticket.fetch_add(1) * interval * 1e6));
          std::this_thread::sleep_until(slot);
        }
        const auto sent = Clock::now();
        if (sent >= stop_at) return;
        auto context = (*client)->NewContext();
        grpc::Status status;
        if (oip) {
          ::inference::ModelInferResponse response;
          status = oip_stub->ModelInfer(context.get(), infer, &response);
        } else {
          v1::SegmentResponse response;
          status = stub->Segment(context.get(), request, &response);
        }
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
  const double images_per_second = latencies.size() / o.duration;
  out << std::fixed << std::setprecision(2) << (oip ? "ModelInfer" : "Segment") << "  model "
      << o.model << "  "
      << o.size << "x" << o.size << "x" << o.channels << "  concurrency " << o.concurrency
      << (interval > 0 ? absl::StrCat("  rate ", o.rate, "/s") : "") << "\n";
  out << "images/s " << images_per_second << "  (" << latencies.size() << " ok in " << o.duration
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

}  // namespace

void AddBenchCommand(CLI::App& segctl, Invocation& invocation) {
  auto o = std::make_shared<Options>();
  CLI::App* bench =
      segctl.add_subcommand("bench", "load-test Segment (or OIP ModelInfer): images/s and latency percentiles");
  bench->add_option("--model", o->model, "model name, name:version or alias")->required();
  bench->add_option("--concurrency", o->concurrency, "parallel clients")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  bench->add_option("--duration", o->duration, "seconds measured")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  bench->add_option("--size", o->size, "random SIZE x SIZE images")
      ->check(CLI::Range(1, 8192))
      ->capture_default_str();
  bench->add_option("--channels", o->channels, "image channels")
      ->check(CLI::Range(1, 4))
      ->capture_default_str();
  bench->add_option("--rate", o->rate, "cap on total requests/s (0 = as fast as answered)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  bench->add_option("--warmup", o->warmup, "seconds before measuring")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  bench->add_option("--api", o->api,
                    "segment: segserve.v1 Segment (raw tensor, raw mask); oip: the Open "
                    "Inference Protocol's ModelInfer (UINT8 NHWC input, mask output)")
      ->check(CLI::IsMember({"segment", "oip"}))
      ->capture_default_str();
  bench->add_option("--metrics", o->metrics,
                    "scrape the server's /metrics here for the batch-size distribution")
      ->check(HostPortValidator());
  SetExamples(bench,
              {"segctl bench --model l1-pruned --concurrency 8 --duration 10 --metrics "
               "localhost:9090",
               "segctl --timeout 120 bench --model baseline --rate 50 --duration 30"},
              "Sends raw-tensor Segment calls from CONCURRENCY clients; prints images/s and\n"
              "latency p50/p90/p99.");
  SetAction(bench, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) {
              return Bench(*o, global, out, err);
            });
}

}  // namespace segserve::segctl
