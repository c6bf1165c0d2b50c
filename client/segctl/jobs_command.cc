// `segctl submit-train`, `segctl jobs list|get|cancel|watch`, `segctl datasets list|generate`.
#include <unistd.h>

#include <iomanip>
#include <sstream>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/segctl/args.h"
#include "client/segctl/commands.h"
#include "segserve/v1/datasets.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"

namespace segserve::segctl {
namespace {

constexpr char kSubmitUsage[] =
    "usage: segctl submit-train --dataset NAME [--encoder resnet34] [--prune-level 1]\n"
    "         [--prune-levels 0,1,2,3,4] [--encoders resnet18,resnet34] [--epochs 50]\n"
    "         [--batch-size 8] [--lr 0.001] [--seed 1] [--cross-domain SHIFT|DATASET]...\n"
    "         [--model-name NAME] [--alias ALIAS] [--pretrained-encoder FILE]\n"
    "         [--early-stopping N] [--max-steps-per-epoch N] [--priority P] [--wait]\n"
    "  Several prune levels or encoders submit a sweep (one child job per configuration)\n"
    "  and, with --wait, print the comparison table. --cross-domain takes a shift of the\n"
    "  training data set (brightness:4, contrast:3, saturation:5) or another data set name\n"
    "  (repeat or comma-separate for several).\n";

constexpr char kJobsUsage[] =
    "usage: segctl jobs list [--state RUNNING] [--limit 20]\n"
    "       segctl jobs get JOB_ID\n"
    "       segctl jobs cancel JOB_ID\n"
    "       segctl jobs watch JOB_ID\n";

constexpr char kDatasetsUsage[] =
    "usage: segctl datasets list\n"
    "       segctl datasets generate --name NAME [--n 500] [--size 256] [--seed 1]\n"
    "                                [--shift brightness:3]\n";

const char* StateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_QUEUED: return "QUEUED";
    case v1::JOB_STATE_RUNNING: return "RUNNING";
    case v1::JOB_STATE_SUCCEEDED: return "SUCCEEDED";
    case v1::JOB_STATE_FAILED: return "FAILED";
    case v1::JOB_STATE_CANCELLED: return "CANCELLED";
    default: return "?";
  }
}

const char* KindName(v1::JobKind kind) {
  switch (kind) {
    case v1::JOB_KIND_TRAIN: return "train";
    case v1::JOB_KIND_SWEEP: return "sweep";
    case v1::JOB_KIND_ANALYSIS: return "analysis";
    case v1::JOB_KIND_SYNTH: return "synth";
    default: return "?";
  }
}

absl::StatusOr<v1::Shift> ParseShiftArg(const std::string& text) {
  v1::Shift shift;
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  int level = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &level)) {
    return absl::InvalidArgumentError(absl::StrCat("expected KIND:LEVEL, got '", text, "'"));
  }
  if (parts[0] == "brightness") shift.set_kind(v1::Shift::KIND_BRIGHTNESS);
  else if (parts[0] == "contrast") shift.set_kind(v1::Shift::KIND_CONTRAST);
  else if (parts[0] == "saturation") shift.set_kind(v1::Shift::KIND_SATURATION);
  else return absl::InvalidArgumentError(absl::StrCat("unknown shift kind '", parts[0], "'"));
  shift.set_level(level);
  return shift;
}

void PrintJobLine(std::ostream& out, const v1::Job& job) {
  out << job.job_id() << "  " << std::left << std::setw(8) << KindName(job.kind())
      << std::setw(10) << StateName(job.state()) << std::right;
  const auto& p = job.progress();
  if (job.kind() == v1::JOB_KIND_TRAIN && p.epochs() > 0) {
    out << " epoch " << p.epoch() << "/" << p.epochs() << std::fixed << std::setprecision(3)
        << " loss " << p.loss() << " val_iou " << p.val_iou();
  }
  if (!job.model_name().empty()) out << "  -> " << job.model_name() << ":" << job.model_version();
  if (!job.reason().empty()) out << "  (" << job.reason() << ")";
  out << "\n";
}

void PrintSweepTable(std::ostream& out, const v1::Job& job) {
  if (job.sweep_size() == 0) return;
  std::vector<std::string> labels;
  for (const auto& [label, iou] : job.sweep(0).cross_domain_iou()) labels.push_back(label);
  out << "\n" << std::left << std::setw(10) << "encoder" << std::setw(7) << "level"
      << std::setw(11) << "state" << std::setw(9) << "val IoU" << std::setw(10) << "test IoU";
  for (const auto& label : labels) out << std::setw(std::max<size_t>(12, label.size() + 2)) << label;
  out << "model\n";
  for (const auto& row : job.sweep()) {
    out << std::setw(10) << (row.encoder() == v1::ENCODER_RESNET18 ? "resnet18" : "resnet34")
        << std::setw(7) << absl::StrCat("L", row.prune_level()) << std::setw(11)
        << StateName(row.state()) << std::fixed << std::setprecision(4) << std::setw(9)
        << row.val_iou() << std::setw(10) << row.test_iou();
    for (const auto& label : labels) {
      auto it = row.cross_domain_iou().find(label);
      out << std::setw(std::max<size_t>(12, label.size() + 2))
          << (it == row.cross_domain_iou().end() ? 0.0 : it->second);
    }
    out << row.model_name() << ":" << row.model_version() << "\n";
  }
  out << std::right;
}

void PrintJob(std::ostream& out, const v1::Job& job) {
  PrintJobLine(out, job);
  for (const auto& [key, value] : job.metrics()) out << "  " << key << " = " << value << "\n";
  for (const auto& child : job.child_job_ids()) out << "  child " << child << "\n";
  PrintSweepTable(out, job);
}

// Streams a job's events with a one-line live status; returns the terminal job.
absl::StatusOr<v1::Job> Watch(client::Client& client, const std::string& job_id,
                              std::ostream& out) {
  auto stub = v1::Training::NewStub(client.channel());
  auto context = client.NewStreamContext();
  v1::JobRef ref;
  ref.set_job_id(job_id);
  auto reader = stub->WatchJob(context.get(), ref);
  v1::JobEvent event;
  v1::Job last;
  const bool tty = isatty(STDOUT_FILENO);
  while (reader->Read(&event)) {
    last = event.job();
    const auto& p = last.progress();
    std::ostringstream line;
    line << StateName(last.state());
    if (p.epochs() > 0) {
      line << "  epoch " << p.epoch() << "/" << p.epochs() << "  step " << p.step() << "/"
           << p.steps() << std::fixed << std::setprecision(4) << "  loss " << p.loss()
           << "  val IoU " << p.val_iou() << std::setprecision(1) << "  " << p.images_per_second()
           << " img/s  ETA " << static_cast<int64_t>(p.eta_seconds()) << " s";
    } else if (last.kind() == v1::JOB_KIND_SWEEP) {
      line << "  " << std::fixed << std::setprecision(0) << p.fraction() * 100 << "% of "
           << last.child_job_ids_size() << " configurations";
    }
    if (tty) {
      out << "\r" << line.str() << "\033[K" << std::flush;
    } else if (event.terminal() || !event.message().empty()) {
      out << line.str() << "\n";
    }
    if (event.terminal()) break;
  }
  if (tty) out << "\n";
  grpc::Status status = reader->Finish();
  if (!status.ok()) return client::FromGrpcStatus(status);
  return last;
}

}  // namespace

int RunSubmitTrain(const GlobalOptions& global, const std::vector<std::string>& argv,
                   std::ostream& out, std::ostream& err) {
  auto args = Args::Parse(
      argv,
      {"dataset", "encoder", "encoders", "prune-level", "prune-levels", "epochs", "batch-size",
       "lr", "seed", "cross-domain", "model-name", "alias", "pretrained-encoder",
       "early-stopping", "max-steps-per-epoch", "priority", "crop-size", "device"},
      {"wait", "help", "color"});
  if (!args.ok()) {
    err << "segctl submit-train: " << args.status().message() << "\n" << kSubmitUsage;
    return kExitUsage;
  }
  if (args->Has("help")) {
    out << kSubmitUsage;
    return kExitOk;
  }
  v1::TrainSpec spec;
  spec.set_dataset(args->Get("dataset"));
  const std::string encoders = args->Get("encoders", args->Get("encoder", "resnet34"));
  for (absl::string_view e : absl::StrSplit(encoders, ',', absl::SkipEmpty())) {
    if (e == "resnet18") spec.add_encoders(v1::ENCODER_RESNET18);
    else if (e == "resnet34") spec.add_encoders(v1::ENCODER_RESNET34);
    else {
      err << "segctl submit-train: unknown encoder '" << std::string(e) << "'\n";
      return kExitUsage;
    }
  }
  const std::string levels = args->Get("prune-levels", args->Get("prune-level", "1"));
  for (absl::string_view l : absl::StrSplit(levels, ',', absl::SkipEmpty())) {
    int level = 0;
    if (!absl::SimpleAtoi(l, &level)) {
      err << "segctl submit-train: bad prune level '" << std::string(l) << "'\n";
      return kExitUsage;
    }
    spec.add_prune_levels(level);
  }
  struct IntFlag {
    const char* name;
    int64_t fallback;
  };
  int64_t values[7];
  const IntFlag int_flags[] = {{"epochs", 50},         {"batch-size", 8}, {"seed", 1},
                               {"early-stopping", 0},  {"max-steps-per-epoch", 0},
                               {"priority", 0},        {"crop-size", 0}};
  for (int i = 0; i < 7; ++i) {
    auto v = args->GetInt(int_flags[i].name, int_flags[i].fallback);
    if (!v.ok()) {
      err << "segctl submit-train: " << v.status().message() << "\n";
      return kExitUsage;
    }
    values[i] = *v;
  }
  spec.set_epochs(static_cast<int>(values[0]));
  spec.set_batch_size(static_cast<int>(values[1]));
  spec.set_seed(static_cast<uint64_t>(values[2]));
  spec.set_early_stopping_patience(static_cast<int>(values[3]));
  spec.set_max_steps_per_epoch(static_cast<int>(values[4]));
  spec.set_priority(static_cast<int>(values[5]));
  spec.mutable_augmentation()->set_crop_size(static_cast<int>(values[6]));
  spec.mutable_augmentation()->set_color(args->Has("color"));
  auto lr = args->GetDouble("lr", 1e-3);
  if (!lr.ok()) {
    err << "segctl submit-train: " << lr.status().message() << "\n";
    return kExitUsage;
  }
  spec.set_learning_rate(static_cast<float>(*lr));
  for (absl::string_view set : absl::StrSplit(args->Get("cross-domain"), ',', absl::SkipEmpty())) {
    auto* cross = spec.add_cross_domain();
    const std::string text(set);
    if (text.find(':') != std::string::npos) {
      auto shift = ParseShiftArg(text);
      if (!shift.ok()) {
        err << "segctl submit-train: --cross-domain: " << shift.status().message() << "\n";
        return kExitUsage;
      }
      *cross->mutable_dataset()->mutable_shift() = *shift;
      cross->set_label(text);
    } else {
      cross->mutable_dataset()->set_name(text);
    }
  }
  spec.set_model_name(args->Get("model-name"));
  if (args->Has("alias")) spec.add_set_aliases(args->Get("alias"));
  spec.set_pretrained_encoder(args->Get("pretrained-encoder"));
  spec.set_device(args->Get("device"));

  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  auto stub = v1::Training::NewStub((*client)->channel());
  auto context = (*client)->NewContext();
  v1::Job job;
  grpc::Status status = stub->SubmitTrain(context.get(), spec, &job);
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  out << "submitted " << KindName(job.kind()) << " " << job.job_id();
  if (job.child_job_ids_size() > 0) out << " with " << job.child_job_ids_size() << " children";
  out << "\n";
  if (!args->Has("wait")) return kExitOk;
  auto final_job = Watch(**client, job.job_id(), out);
  if (!final_job.ok()) return ReportError(err, final_job.status());
  // Refresh: the terminal event of a sweep carries the table.
  auto get_context = (*client)->NewContext();
  v1::JobRef ref;
  ref.set_job_id(job.job_id());
  v1::Job done;
  if (stub->GetJob(get_context.get(), ref, &done).ok()) PrintJob(out, done);
  return done.state() == v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitError;
}

int RunJobs(const GlobalOptions& global, const std::vector<std::string>& argv, std::ostream& out,
            std::ostream& err) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "help") {
    (argv.empty() ? err : out) << kJobsUsage;
    return argv.empty() ? kExitUsage : kExitOk;
  }
  const std::string verb = argv[0];
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  auto stub = v1::Training::NewStub((*client)->channel());
  if (verb == "list") {
    auto args = Args::Parse(rest, {"state", "limit"}, {});
    auto limit = args.ok() ? args->GetInt("limit", 20) : absl::StatusOr<int64_t>(args.status());
    if (!limit.ok()) {
      err << "segctl jobs list: " << limit.status().message() << "\n" << kJobsUsage;
      return kExitUsage;
    }
    v1::ListJobsRequest request;
    request.set_page_size(static_cast<int>(*limit));
    if (args->Has("state")) {
      v1::JobState state;
      if (!v1::JobState_Parse("JOB_STATE_" + args->Get("state"), &state)) {
        err << "segctl jobs list: unknown --state " << args->Get("state") << "\n";
        return kExitUsage;
      }
      request.add_states(state);
    }
    v1::ListJobsResponse response;
    auto context = (*client)->NewContext();
    grpc::Status status = stub->ListJobs(context.get(), request, &response);
    if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
    if (response.jobs_size() == 0) out << "no jobs\n";
    for (const auto& job : response.jobs()) PrintJobLine(out, job);
    return kExitOk;
  }
  if (rest.size() != 1) {
    err << kJobsUsage;
    return kExitUsage;
  }
  v1::JobRef ref;
  ref.set_job_id(rest[0]);
  if (verb == "watch") {
    auto job = Watch(**client, rest[0], out);
    if (!job.ok()) return ReportError(err, job.status());
    PrintJob(out, *job);
    return job->state() == v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitError;
  }
  v1::Job job;
  auto context = (*client)->NewContext();
  grpc::Status status;
  if (verb == "get") {
    status = stub->GetJob(context.get(), ref, &job);
  } else if (verb == "cancel") {
    status = stub->CancelJob(context.get(), ref, &job);
  } else {
    err << "segctl jobs: unknown command '" << verb << "'\n" << kJobsUsage;
    return kExitUsage;
  }
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  PrintJob(out, job);
  return kExitOk;
}

int RunDatasets(const GlobalOptions& global, const std::vector<std::string>& argv,
                std::ostream& out, std::ostream& err) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "help") {
    (argv.empty() ? err : out) << kDatasetsUsage;
    return argv.empty() ? kExitUsage : kExitOk;
  }
  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  auto stub = v1::Datasets::NewStub((*client)->channel());
  auto context = (*client)->NewContext();
  if (argv[0] == "list") {
    v1::ListDatasetsResponse response;
    grpc::Status status = stub->List(context.get(), v1::ListDatasetsRequest(), &response);
    if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
    if (response.datasets_size() == 0) out << "no data sets\n";
    for (const auto& d : response.datasets()) {
      out << d.name() << "  " << d.images() << " images  channels=" << d.channels()
          << "  train/val/test=" << d.splits().at("train") << "/" << d.splits().at("val") << "/"
          << d.splits().at("test") << "  classes=";
      for (int i = 0; i < d.class_names_size(); ++i) out << (i ? "," : "") << d.class_names(i);
      out << "\n";
    }
    return kExitOk;
  }
  if (argv[0] != "generate") {
    err << kDatasetsUsage;
    return kExitUsage;
  }
  auto args = Args::Parse({argv.begin() + 1, argv.end()}, {"name", "n", "size", "seed", "shift"},
                          {"wait"});
  if (!args.ok()) {
    err << "segctl datasets generate: " << args.status().message() << "\n" << kDatasetsUsage;
    return kExitUsage;
  }
  v1::GenerateDatasetRequest request;
  request.set_name(args->Get("name"));
  auto n = args->GetInt("n", 500);
  auto size = args->GetInt("size", 256);
  auto seed = args->GetInt("seed", 1);
  if (!n.ok() || !size.ok() || !seed.ok()) {
    err << "segctl datasets generate: --n, --size and --seed take integers\n";
    return kExitUsage;
  }
  request.set_n(static_cast<int>(*n));
  request.set_size(static_cast<int>(*size));
  request.set_seed(static_cast<uint64_t>(*seed));
  if (args->Has("shift")) {
    auto shift = ParseShiftArg(args->Get("shift"));
    if (!shift.ok()) {
      err << "segctl datasets generate: --shift: " << shift.status().message() << "\n";
      return kExitUsage;
    }
    *request.mutable_shift() = *shift;
  }
  v1::Job job;
  grpc::Status status = stub->Generate(context.get(), request, &job);
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  out << "submitted synth " << job.job_id() << "\n";
  if (!args->Has("wait")) return kExitOk;
  auto done = Watch(**client, job.job_id(), out);
  if (!done.ok()) return ReportError(err, done.status());
  return done->state() == v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitError;
}

}  // namespace segserve::segctl
