// `segctl susceptibility`: per-layer Hellinger distances of one or more models between two
// server-side image sets, as a table and optionally a PNG plot.
#include <iostream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/segctl/commands.h"
#include "client/segctl/job_output.h"
#include "client/segctl/susceptibility_plot.h"
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
  if (parts.size() > next && !is_shift(parts[next]))
    set.mutable_dataset()->set_split(parts[next++]);
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
  PrintSusceptibilityReport(out, done.analysis());
  if (!o.plot.empty()) {
    if (absl::Status s = WriteSusceptibilityPlot(done.analysis(), o.plot); !s.ok()) {
      return ReportError(err, s);
    }
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
  command
      ->add_option("--target", o->target,
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
