// `segctl susceptibility`: per-layer Hellinger distances of one or more models between two
// server-side image sets, as a table and optionally a PNG plot.
#include <iomanip>
#include <iostream>
#include <thread>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/segctl/commands.h"
#include "segserve/v1/susceptibility.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"

namespace segserve::segctl {
namespace {

absl::StatusOr<v1::ImageSet> ParseSet(const std::string& text, int64_t limit) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  v1::ImageSet set;
  set.set_limit(static_cast<int>(limit));
  set.mutable_dataset()->set_name(parts[0]);
  size_t next = 1;
  auto is_shift = [](const std::string& s) {
    return s == "brightness" || s == "contrast" || s == "saturation";
  };
  if (parts.size() > next && !is_shift(parts[next])) set.mutable_dataset()->set_split(parts[next++]);
  if (parts.size() > next) {
    if (parts.size() != next + 2 || !is_shift(parts[next])) {
      return absl::InvalidArgumentError(absl::StrCat("bad set '", text, "'"));
    }
    int level = 0;
    if (!absl::SimpleAtoi(parts[next + 1], &level)) {
      return absl::InvalidArgumentError(absl::StrCat("bad shift level in '", text, "'"));
    }
    auto* shift = set.mutable_dataset()->mutable_shift();
    shift->set_kind(parts[next] == "brightness" ? v1::Shift::KIND_BRIGHTNESS
                    : parts[next] == "contrast" ? v1::Shift::KIND_CONTRAST
                                                : v1::Shift::KIND_SATURATION);
    shift->set_level(level);
  }
  return set;
}

void PrintReport(std::ostream& out, const v1::SusceptibilityReport& report) {
  out << "source images " << report.source_images() << ", target images "
      << report.target_images() << ", bins " << report.bins() << "\n";
  for (const auto& model : report.models()) {
    out << "\n" << model.model_name() << ":" << model.model_version() << "\n";
    out << std::left << std::setw(16) << "layer" << std::right << std::setw(9) << "channels"
        << std::setw(8) << "mean" << std::setw(8) << "median" << std::setw(8) << "max"
        << std::setw(8) << "null" << "\n";
    for (const auto& layer : model.layers()) {
      out << std::left << std::setw(16) << layer.layer() << std::right << std::setw(9)
          << layer.channels() << std::fixed << std::setprecision(3) << std::setw(8)
          << layer.mean() << std::setw(8) << layer.median() << std::setw(8) << layer.max()
          << std::setw(8) << layer.null_mean() << "\n";
    }
  }
}

absl::Status Plot(const v1::SusceptibilityReport& report, const std::string& path) {
  const int width = 1100, height = 520, left = 80, right = 360, top = 50, bottom = 90;
  cv::Mat canvas(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  const int plot_w = width - left - right, plot_h = height - top - bottom;
  auto y_of = [&](double v) { return top + static_cast<int>((1.0 - v) * plot_h); };
  for (int t = 0; t <= 10; ++t) {
    const int y = y_of(t / 10.0);
    cv::line(canvas, {left, y}, {left + plot_w, y}, cv::Scalar(225, 225, 225), 1);
    cv::putText(canvas, absl::StrCat(t / 10.0).substr(0, 3), {left - 40, y + 5},
                cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(60, 60, 60), 1, cv::LINE_AA);
  }
  cv::rectangle(canvas, {left, top}, {left + plot_w, top + plot_h}, cv::Scalar(0, 0, 0), 1);
  cv::putText(canvas, "Hellinger distance per layer (dashed: null)", {left, top - 18},
              cv::FONT_HERSHEY_SIMPLEX, 0.6, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  const cv::Scalar colours[] = {{200, 80, 30}, {40, 40, 210}, {40, 150, 40}, {160, 40, 160},
                                {20, 140, 200}, {90, 90, 90}};
  int model_index = 0;
  for (const auto& model : report.models()) {
    const int n = model.layers_size();
    if (n == 0) continue;
    const cv::Scalar colour = colours[model_index % 6];
    auto x_of = [&](int i) { return left + (n == 1 ? plot_w / 2 : i * plot_w / (n - 1)); };
    for (int i = 0; i < n; ++i) {
      const auto& layer = model.layers(i);
      cv::circle(canvas, {x_of(i), y_of(layer.mean())}, 4, colour, cv::FILLED, cv::LINE_AA);
      if (i > 0) {
        cv::line(canvas, {x_of(i - 1), y_of(model.layers(i - 1).mean())},
                 {x_of(i), y_of(layer.mean())}, colour, 2, cv::LINE_AA);
        if (layer.null_mean() >= 0 && model.layers(i - 1).null_mean() >= 0) {
          // Dashed: short segments along the null curve.
          const cv::Point a{x_of(i - 1), y_of(model.layers(i - 1).null_mean())};
          const cv::Point b{x_of(i), y_of(layer.null_mean())};
          for (int s = 0; s < 10; s += 2) {
            cv::line(canvas, a + (b - a) * s / 10, a + (b - a) * (s + 1) / 10, colour, 1,
                     cv::LINE_AA);
          }
        }
      }
      if (model_index == 0) {
        // Layer names, rotated by writing them at an angle is not available: stagger them.
        cv::putText(canvas, layer.layer(), {x_of(i) - 40, top + plot_h + 20 + (i % 2) * 18},
                    cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
      }
    }
    const int legend_y = top + 20 + model_index * 24;
    cv::line(canvas, {left + plot_w + 15, legend_y - 5}, {left + plot_w + 45, legend_y - 5},
             colour, 2, cv::LINE_AA);
    cv::putText(canvas, absl::StrCat(model.model_name(), ":", model.model_version()),
                {left + plot_w + 52, legend_y}, cv::FONT_HERSHEY_SIMPLEX, 0.45,
                cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    ++model_index;
  }
  if (!cv::imwrite(path, canvas)) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}


struct Options {
  std::vector<std::string> models;
  std::string source, target, plot;
  int bins = 0, limit = 0;
};

// DATASET[:SPLIT][:SHIFT:LEVEL].
const CLI::Validator& SetValidator() {
  static const CLI::Validator validator(
      [](std::string& value) -> std::string {
        auto set = ParseSet(value, 0);
        return set.ok() ? std::string() : std::string(set.status().message());
      },
      "DATASET[:SPLIT][:SHIFT:LEVEL]", "image_set");
  return validator;
}

int Analyze(const Options& o, const GlobalOptions& global, std::ostream& out, std::ostream& err) {
  v1::AnalyzeRequest request;
  for (const std::string& name : o.models) request.add_models()->set_name(name);
  *request.mutable_source() = *ParseSet(o.source, o.limit);  // checked while parsing
  *request.mutable_target() = *ParseSet(o.target, o.limit);
  request.set_bins(o.bins);

  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  auto stub = v1::Susceptibility::NewStub((*client)->channel());
  v1::AnalysisJob job;
  {
    auto context = (*client)->NewContext();
    grpc::Status status = stub->SubmitAnalysis(context.get(), request, &job);
    if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  }
  err << "analysis job " << job.job_id() << "\n";
  auto training = v1::Training::NewStub((*client)->channel());
  grpc::ClientContext watch_context;
  v1::JobRef ref;
  ref.set_job_id(job.job_id());
  auto reader = training->WatchJob(&watch_context, ref);
  v1::JobEvent event;
  v1::Job last;
  while (reader->Read(&event)) {
    last = event.job();
    if (event.terminal()) break;
  }
  watch_context.TryCancel();
  reader->Finish();
  if (last.state() != v1::JOB_STATE_SUCCEEDED) {
    err << "segctl susceptibility: job " << job.job_id() << " ended " << last.state() << ": "
        << last.reason() << "\n";
    return kExitError;
  }
  // The terminal event carries the job; fetch it once more for the full report.
  auto context = (*client)->NewContext();
  v1::Job done;
  grpc::Status status = training->GetJob(context.get(), ref, &done);
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  PrintReport(out, done.analysis());
  if (!o.plot.empty()) {
    if (absl::Status s = Plot(done.analysis(), o.plot); !s.ok()) return ReportError(err, s);
    out << "\nplot written to " << o.plot << "\n";
  }
  return kExitOk;
}

}  // namespace

void AddSusceptibilityCommand(CLI::App& segctl, Invocation& invocation) {
  auto o = std::make_shared<Options>();
  CLI::App* command = segctl.add_subcommand(
      "susceptibility", "per-layer domain-shift susceptibility of models (table, plot)");
  command->add_option("--model", o->models, "model(s), comma-separated")
      ->required()
      ->delimiter(',')
      ->allow_extra_args(false);
  command->add_option("--source", o->source, "source images DATASET[:SPLIT]")
      ->required()
      ->check(SetValidator());
  command->add_option("--target", o->target,
                      "target images DATASET[:SPLIT][:SHIFT:LEVEL] (shift applied on the fly)")
      ->required()
      ->check(SetValidator());
  command->add_option("--bins", o->bins, "histogram bins (0 = server default)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--limit", o->limit, "images per set (0 = all)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--plot", o->plot, "draw one curve per model into this PNG");
  SetExamples(command,
              {"segctl susceptibility --model baseline,l1-pruned --source plasmodium-synth "
               "--target plasmodium-synth:test:brightness:4 --plot susceptibility.png"},
              "Per-layer Hellinger distance between the models' feature distributions on the\n"
              "source and target sets (server-side data sets; SHIFT is brightness, contrast\n"
              "or saturation, LEVEL 0..5). Runs as a job; prints a table per model.");
  SetAction(command, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) {
              return Analyze(*o, global, out, err);
            });
}

}  // namespace segserve::segctl
