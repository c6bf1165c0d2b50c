// `segctl experiment run|report`: the study as one job (docs/experiments.md).
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/segctl/commands.h"
#include "client/segctl/experiment_figures.h"
#include "client/segctl/experiment_report.h"
#include "client/segctl/job_output.h"
#include "nlohmann/json.hpp"
#include "segserve/v1/training.grpc.pb.h"

namespace segserve::segctl {
namespace {

struct RunOptions {
  std::string dataset, preset, seeds, model_name, pretrained_encoder, device, precision = "fp32";
  std::vector<std::string> encoders, shifts, susceptibility;
  std::vector<int> prune_levels, shift_levels;
  int epochs = 0, batch_size = 0, max_steps_per_epoch = 0, priority = 0,
      susceptibility_images = 0;
  double lr = 0;
  bool wait = false, bf16_check = false;
};

// --seeds N (seeds 1..N) or a comma-separated list of seeds.
absl::StatusOr<std::vector<uint64_t>> ParseSeeds(const std::string& text) {
  std::vector<uint64_t> seeds;
  if (text.empty()) return seeds;
  if (text.find(',') == std::string::npos) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(text, &n) || n < 1 || n > 100) {
      return absl::InvalidArgumentError("--seeds: a count 1..100 or a list such as 1,5,9");
    }
    for (uint64_t s = 1; s <= n; ++s) seeds.push_back(s);
    return seeds;
  }
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    uint64_t seed = 0;
    if (!absl::SimpleAtoi(part, &seed)) {
      return absl::InvalidArgumentError(absl::StrCat("--seeds: '", part, "' is not a seed"));
    }
    seeds.push_back(seed);
  }
  return seeds;
}

const CLI::Validator& SeedsValidator() {
  static const CLI::Validator validator(
      [](std::string& value) -> std::string {
        auto seeds = ParseSeeds(value);
        return seeds.ok() ? std::string() : std::string(seeds.status().message());
      },
      "N|S1,S2,..", "seeds");
  return validator;
}

int Run(const RunOptions& o, const GlobalOptions& global, std::ostream& out, std::ostream& err) {
  v1::ExperimentSpec spec;
  spec.set_dataset(o.dataset);
  if (o.preset == "quick") spec.set_preset(v1::EXPERIMENT_PRESET_QUICK);
  if (o.preset == "paper") spec.set_preset(v1::EXPERIMENT_PRESET_PAPER);
  for (const std::string& e : o.encoders) {
    spec.add_encoders(e == "resnet18" ? v1::ENCODER_RESNET18 : v1::ENCODER_RESNET34);
  }
  for (int level : o.prune_levels) spec.add_prune_levels(level);
  auto seeds = ParseSeeds(o.seeds);
  if (!seeds.ok()) return ReportError(err, seeds.status());
  for (uint64_t seed : *seeds) spec.add_seeds(seed);
  for (const std::string& s : o.shifts) spec.add_shifts(s);
  for (int level : o.shift_levels) spec.add_shift_levels(level);
  if (o.epochs > 0) spec.set_epochs(o.epochs);
  spec.set_batch_size(o.batch_size);
  spec.set_learning_rate(static_cast<float>(o.lr));
  spec.set_max_steps_per_epoch(o.max_steps_per_epoch);
  spec.set_priority(o.priority);
  spec.set_model_name(o.model_name);
  spec.set_pretrained_encoder(o.pretrained_encoder);
  spec.set_device(o.device);
  spec.set_precision(PrecisionToProto(o.precision));
  spec.set_bf16_check(o.bf16_check);
  if (!o.susceptibility.empty()) {
    // "none" asks for no analysis; an unset flag leaves the choice to the server.
    auto* susceptibility = spec.mutable_susceptibility();
    for (const std::string& target : o.susceptibility) {
      if (target != "none") susceptibility->add_targets(target);
    }
  }
  if (o.susceptibility_images > 0) {
    spec.mutable_susceptibility()->set_images(o.susceptibility_images);
    if (o.susceptibility.empty()) {
      return ReportError(err, absl::InvalidArgumentError(
                                  "--susceptibility-images: needs --susceptibility targets"));
    }
  }

  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  auto stub = v1::Training::NewStub((*client)->channel());
  auto context = (*client)->NewContext();
  v1::Job job;
  grpc::Status status = stub->SubmitExperiment(context.get(), spec, &job);
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  out << "submitted experiment " << job.job_id() << " with " << job.child_job_ids_size()
      << " trainings\n";
  if (!o.wait) return kExitOk;
  auto final_job = WatchJob(**client, job.job_id(), out);
  if (!final_job.ok()) return ReportError(err, final_job.status());
  auto get_context = (*client)->NewContext();
  v1::JobRef ref;
  ref.set_job_id(job.job_id());
  v1::Job done;
  status = stub->GetJob(get_context.get(), ref, &done);
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  const nlohmann::json report =
      nlohmann::json::parse(done.experiment_report_json(), nullptr, false);
  if (report.is_object()) {
    out << "\nFindings:\n";
    for (const auto& f : report.value("findings", nlohmann::json::array())) {
      out << "- " << f.value("text", "") << "\n";
    }
    out << "\nFull report: segctl experiment report " << done.job_id() << " --out DIR\n";
  } else if (!done.reason().empty()) {
    out << done.reason() << "\n";
  }
  return done.state() == v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitError;
}

int Report(const std::string& job_id, const std::string& out_dir, const GlobalOptions& global,
           std::ostream& out, std::ostream& err) {
  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  auto stub = v1::Training::NewStub((*client)->channel());
  auto context = (*client)->NewContext();
  v1::JobRef ref;
  ref.set_job_id(job_id);
  v1::Job job;
  grpc::Status status = stub->GetJob(context.get(), ref, &job);
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  if (job.kind() != v1::JOB_KIND_EXPERIMENT) {
    return ReportError(
        err, absl::FailedPreconditionError(absl::StrCat(job_id, " is a ", JobKindName(job.kind()),
                                                        " job, not an experiment")));
  }
  const nlohmann::json report = nlohmann::json::parse(job.experiment_report_json(), nullptr, false);
  if (!report.is_object()) {
    return ReportError(err, absl::FailedPreconditionError(absl::StrCat(
                                "experiment ", job_id, " has no report (",
                                JobStateName(job.state()), job.reason().empty() ? "" : ": ",
                                job.reason(), "); a report exists once every training has ended")));
  }
  if (out_dir.empty()) {
    out << RenderExperimentMarkdown(report);
    return kExitOk;
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    return ReportError(err, absl::InternalError(absl::StrCat("--out: cannot create '", out_dir,
                                                             "': ", ec.message())));
  }
  // The figures first, so that report.md links exactly those that were drawn. Without them
  // (e.g. PLplot's PNG driver missing) report.md and report.json are still written, with the
  // reason, and the command fails.
  FiguresWritten figures;
  absl::StatusOr<FiguresWritten> drawn = WriteExperimentFigures(report, out_dir);
  if (drawn.ok()) {
    figures = *std::move(drawn);
    for (const FigureLink& f : figures.figures) out << "wrote " << out_dir << "/" << f.file << "\n";
  } else {
    figures.notes.push_back(absl::StrCat("Figures not drawn: ", drawn.status().ToString()));
  }
  for (const auto& [name, text] :
       {std::pair<std::string, std::string>{"report.md", RenderExperimentMarkdown(report, figures)},
        {"report.json", report.dump(2) + "\n"}}) {
    const std::string path = out_dir + "/" + name;
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file << text;
    if (!file.flush()) {
      return ReportError(err, absl::InternalError(absl::StrCat("cannot write '", path, "'")));
    }
    out << "wrote " << path << "\n";
  }
  if (!drawn.ok()) {
    return ReportError(err, absl::Status(drawn.status().code(),
                                         absl::StrCat("figures: ", drawn.status().message())));
  }
  return kExitOk;
}

}  // namespace

void AddExperimentCommands(CLI::App& segctl, Invocation& invocation) {
  CLI::App* group = segctl.add_subcommand(
      "experiment", "the study as one job: grid x seeds x graded shifts, with a report");
  group->require_subcommand(1);
  SetExamples(group, {"segctl experiment run --dataset plasmodium-synth --preset quick --wait",
                      "segctl experiment report job-0123456789abcdef --out results"});

  auto o = std::make_shared<RunOptions>();
  CLI::App* run = group->add_subcommand(
      "run", "submit an experiment: one training per encoder x prune level x seed");
  run->add_option("--dataset", o->dataset, "server-side data set to train on")->required();
  run->add_option("--preset", o->preset, "fill what is not given: quick or paper")
      ->check(CLI::IsMember({"quick", "paper"}));
  run->add_option("--encoder,--encoders", o->encoders, "encoder(s): resnet18, resnet34")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->check(CLI::IsMember({"resnet18", "resnet34"}));
  run->add_option("--prune-levels", o->prune_levels, "skip-pruning levels 0..4, comma-separated")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->check(CLI::Range(0, 4));
  run->add_option("--seeds", o->seeds, "a count N (seeds 1..N) or a list of seeds")
      ->check(SeedsValidator());
  run->add_option("--shifts", o->shifts, "shift kinds: brightness, contrast, saturation")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->check(CLI::IsMember({"brightness", "contrast", "saturation"}));
  run->add_option("--shift-levels", o->shift_levels, "shift levels 1..5, comma-separated")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->check(CLI::Range(1, 5));
  run->add_option("--susceptibility", o->susceptibility,
                  "per-layer susceptibility targets kind:level, comma-separated, or none "
                  "(default: per shift kind its mildest level of at least 2)")
      ->delimiter(',')
      ->allow_extra_args(false);
  run->add_option("--susceptibility-images", o->susceptibility_images,
                  "images per set for the susceptibility analysis (default 64)")
      ->check(CLI::Range(2, 1024));
  run->add_option("--epochs", o->epochs, "epochs per training (default: the preset's, else 50)")
      ->check(CLI::Range(1, 10000));
  run->add_option("--batch-size", o->batch_size, "images per step (default 8)")
      ->check(CLI::Range(1, 256));
  run->add_option("--lr", o->lr, "learning rate (default 1e-3)")->check(CLI::Range(0.0, 1.0));
  run->add_option("--max-steps-per-epoch", o->max_steps_per_epoch, "cap steps (0 = all)")
      ->check(CLI::Range(0, 1000000));
  run->add_option("--model-name", o->model_name,
                  "prefix of the models' names (default: the data set's)");
  run->add_option("--pretrained-encoder", o->pretrained_encoder,
                  "torchvision ResNet state dict under the data dir, for every training");
  run->add_option("--device", o->device, "cpu, cuda or cuda:N (default: the server's)");
  run->add_option("--priority", o->priority, "higher runs first")->check(CLI::Range(-100, 100));
  AddPrecisionOptions(run, o->precision, o->bf16_check);
  run->add_flag("--wait", o->wait, "follow the experiment; print its findings at the end");
  SetExamples(run,
              {"segctl experiment run --dataset plasmodium-synth --encoders resnet18 "
               "--prune-levels 0,1 --seeds 2 --shifts brightness,contrast --shift-levels 1,3,5 "
               "--epochs 5 --wait",
               "segctl experiment run --dataset plasmodium-synth --preset paper"},
              "Each training is an ordinary job (segctl jobs list); when the last one ends the\n"
              "server aggregates them over seeds. See docs/experiments.md.");
  SetAction(run, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) {
              return Run(*o, global, out, err);
            });

  auto job_id = std::make_shared<std::string>();
  auto out_dir = std::make_shared<std::string>();
  CLI::App* report = group->add_subcommand(
      "report",
      "render an experiment's report: Markdown on stdout, or report.md + PNG figures in --out");
  report->add_option("job", *job_id, "experiment job id")->required();
  report->add_option("--out", *out_dir,
                     "write report.md, report.json and the PNG figures into this directory");
  SetExamples(report, {"segctl experiment report job-0123456789abcdef --out results"});
  SetAction(report, invocation,
            [job_id, out_dir](const GlobalOptions& global, std::ostream& out, std::ostream& err) {
              return Report(*job_id, *out_dir, global, out, err);
            });
}

}  // namespace segserve::segctl
