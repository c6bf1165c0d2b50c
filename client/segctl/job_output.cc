#include "client/segctl/job_output.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <ostream>
#include <set>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/segctl/table.h"
#include "segserve/v1/training.grpc.pb.h"

namespace segserve::segctl {
namespace {

std::string ModelText(const std::string& name, int64_t version) {
  return name.empty() ? "" : absl::StrCat(name, ":", version);
}

// Sort key of a cross-domain label: shifts "kind:level" by kind then numeric level; data
// set names after them, by name.
std::tuple<int, std::string, int> LabelKey(const std::string& label) {
  const auto colon = label.rfind(':');
  int level = 0;
  if (colon != std::string::npos && absl::SimpleAtoi(label.substr(colon + 1), &level)) {
    return {0, label.substr(0, colon), level};
  }
  return {1, label, 0};
}

}  // namespace

const char* JobStateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_QUEUED:
      return "QUEUED";
    case v1::JOB_STATE_RUNNING:
      return "RUNNING";
    case v1::JOB_STATE_SUCCEEDED:
      return "SUCCEEDED";
    case v1::JOB_STATE_FAILED:
      return "FAILED";
    case v1::JOB_STATE_CANCELLED:
      return "CANCELLED";
    default:
      return "?";
  }
}

const char* JobKindName(v1::JobKind kind) {
  switch (kind) {
    case v1::JOB_KIND_TRAIN:
      return "train";
    case v1::JOB_KIND_SWEEP:
      return "sweep";
    case v1::JOB_KIND_ANALYSIS:
      return "analysis";
    case v1::JOB_KIND_SYNTH:
      return "synth";
    case v1::JOB_KIND_EXPERIMENT:
      return "experiment";
    default:
      return "?";
  }
}

namespace {

// The progress cell of `jobs list` (no state, no ETA).
std::string ProgressCell(const v1::Job& job) {
  const auto& p = job.progress();
  if (job.kind() == v1::JOB_KIND_TRAIN && p.epochs() > 0) {
    return absl::StrFormat("epoch %d/%d loss %.3f val_iou %.3f", p.epoch(), p.epochs(), p.loss(),
                           p.val_iou());
  }
  if (job.kind() == v1::JOB_KIND_SYNTH && p.steps() > 0) {
    return absl::StrCat("images ", p.step(), "/", p.steps());
  }
  if ((job.kind() == v1::JOB_KIND_SWEEP || job.kind() == v1::JOB_KIND_EXPERIMENT) &&
      job.child_job_ids_size() > 0) {
    return absl::StrFormat("%.0f%% of %d", p.fraction() * 100, job.child_job_ids_size());
  }
  return "";
}

}  // namespace

void PrintJobTable(std::ostream& out, const std::vector<v1::Job>& jobs) {
  Table table({"JOB", "KIND", "STATE", "PROGRESS", "MODEL", "REASON"});
  for (const auto& job : jobs) {
    table.AddRow({job.job_id(), JobKindName(job.kind()), JobStateName(job.state()),
                  ProgressCell(job), ModelText(job.model_name(), job.model_version()),
                  job.reason()});
  }
  table.Print(out);
}

std::vector<std::string> SortedCrossDomainLabels(const v1::Job& job) {
  std::set<std::string> unique;
  for (const auto& row : job.sweep()) {
    for (const auto& [label, iou] : row.cross_domain_iou()) unique.insert(label);
  }
  std::vector<std::string> labels(unique.begin(), unique.end());
  std::sort(labels.begin(), labels.end(),
            [](const std::string& a, const std::string& b) { return LabelKey(a) < LabelKey(b); });
  return labels;
}

void PrintSweepTable(std::ostream& out, const v1::Job& job, size_t width) {
  if (job.sweep_size() == 0) return;
  const std::vector<std::string> labels = SortedCrossDomainLabels(job);
  std::vector<std::string> header = {"encoder", "level", "state", "val IoU", "test IoU"};
  header.insert(header.end(), labels.begin(), labels.end());
  header.push_back("model");
  Table table(header);
  for (size_t c = 3; c < header.size() - 1; ++c) table.AlignRight(c);
  for (const auto& row : job.sweep()) {
    std::vector<std::string> cells = {
        row.encoder() == v1::ENCODER_RESNET18 ? "resnet18" : "resnet34",
        absl::StrCat("L", row.prune_level()), JobStateName(row.state()),
        FormatMetric(row.val_iou()), FormatMetric(row.test_iou())};
    for (const auto& label : labels) {
      auto it = row.cross_domain_iou().find(label);
      cells.push_back(it == row.cross_domain_iou().end() ? "-" : FormatMetric(it->second));
    }
    cells.push_back(ModelText(row.model_name(), row.model_version()));
    table.AddRow(std::move(cells));
  }
  out << "\n";
  table.PrintWrapped(out, width, /*key_columns=*/2);
}

void PrintSusceptibilityReport(std::ostream& out, const v1::SusceptibilityReport& report) {
  out << "source images " << report.source_images() << ", target images " << report.target_images()
      << ", bins " << report.bins() << "\n";
  for (const auto& model : report.models()) {
    out << "\n" << model.model_name() << ":" << model.model_version() << "\n";
    out << std::left << std::setw(16) << "layer" << std::right << std::setw(9) << "channels"
        << std::setw(8) << "mean" << std::setw(8) << "median" << std::setw(8) << "max"
        << std::setw(8) << "null"
        << "\n";
    for (const auto& layer : model.layers()) {
      out << std::left << std::setw(16) << layer.layer() << std::right << std::setw(9)
          << layer.channels() << std::fixed << std::setprecision(3) << std::setw(8) << layer.mean()
          << std::setw(8) << layer.median() << std::setw(8) << layer.max() << std::setw(8)
          << layer.null_mean() << "\n";
    }
  }
  out.unsetf(std::ios::fixed);
  out << std::setprecision(6);
}

void PrintJob(std::ostream& out, const v1::Job& job, size_t width) {
  out << job.job_id() << "  " << JobKindName(job.kind()) << "  " << JobStateName(job.state());
  const std::string progress = ProgressCell(job);
  if (!progress.empty()) out << "  " << progress;
  if (!job.model_name().empty()) out << "  -> " << ModelText(job.model_name(), job.model_version());
  if (!job.reason().empty()) out << "  (" << job.reason() << ")";
  out << "\n";
  if (!job.worker().empty() || job.attempt() > 1) {
    out << "  attempt " << job.attempt();
    if (job.restarts() > 0) out << ", restarts " << job.restarts();
    if (!job.worker().empty()) out << ", on " << job.worker();
    out << "\n";
  }
  std::vector<std::pair<std::string, double>> metrics(job.metrics().begin(), job.metrics().end());
  std::sort(metrics.begin(), metrics.end(),
            [](const auto& a, const auto& b) { return NaturalLess(a.first, b.first); });
  for (const auto& [key, value] : metrics) out << "  " << key << " = " << value << "\n";
  std::vector<std::string> targets;
  for (const auto& [target, report] : job.susceptibility()) targets.push_back(target);
  std::sort(targets.begin(), targets.end(), NaturalLess);
  for (const std::string& target : targets) {
    out << "\nsusceptibility to " << target << ": ";
    PrintSusceptibilityReport(out, job.susceptibility().at(target));
  }
  for (const auto& child : job.child_job_ids()) out << "  child " << child << "\n";
  PrintSweepTable(out, job, width);
}

std::string ProgressLine(const v1::Job& job) {
  const auto& p = job.progress();
  std::string line = JobStateName(job.state());
  if (p.epochs() > 0) {
    absl::StrAppendFormat(&line,
                          "  epoch %d/%d  step %d/%d  loss %.4f  val IoU %.4f  %.1f img/s  "
                          "ETA %d s",
                          p.epoch(), p.epochs(), p.step(), p.steps(), p.loss(), p.val_iou(),
                          p.images_per_second(), static_cast<int64_t>(p.eta_seconds()));
  } else if (job.kind() == v1::JOB_KIND_SYNTH && p.steps() > 0) {
    absl::StrAppendFormat(&line, "  images %d/%d (%.0f%%)  %.1f img/s", p.step(), p.steps(),
                          p.fraction() * 100, p.images_per_second());
    if (p.step() < p.steps() && p.step() > 0) {
      absl::StrAppendFormat(&line, "  ETA %.0f s", std::ceil(p.eta_seconds()));
    }
  } else if (job.kind() == v1::JOB_KIND_SWEEP || job.kind() == v1::JOB_KIND_EXPERIMENT) {
    // Live (from the children's progress) while they run: configurations done of n, the
    // fraction including the running ones' epochs, and an ETA.
    if (p.steps() > 0) {
      absl::StrAppendFormat(&line, "  %d/%d configurations done  %.0f%%", p.step(), p.steps(),
                            p.fraction() * 100);
      if (p.eta_seconds() > 0) {
        absl::StrAppendFormat(&line, "  ETA %.0f s", std::ceil(p.eta_seconds()));
      }
    } else {
      absl::StrAppendFormat(&line, "  %.0f%% of %d configurations", p.fraction() * 100,
                            job.child_job_ids_size());
    }
  }
  return line;
}

absl::StatusOr<v1::Job> WatchJob(client::Client& client, const std::string& job_id,
                                 std::ostream& out) {
  auto stub = v1::Training::NewStub(client.channel());
  auto context = client.NewStreamContext();
  v1::JobRef ref;
  ref.set_job_id(job_id);
  auto reader = stub->WatchJob(context.get(), ref);
  v1::JobEvent event;
  v1::Job last;
  const bool tty = isatty(STDOUT_FILENO);
  std::string previous;
  while (reader->Read(&event)) {
    last = event.job();
    // A parent's live events name its running children (the message).
    const bool parent = last.kind() == v1::JOB_KIND_SWEEP || last.kind() == v1::JOB_KIND_EXPERIMENT;
    const std::string line = parent && !event.terminal() && !event.message().empty()
                                 ? absl::StrCat(ProgressLine(last), "  (", event.message(), ")")
                                 : ProgressLine(last);
    if (tty) {
      out << "\r" << line << "\033[K" << std::flush;
    } else if (event.terminal() || (!event.message().empty() && line != previous)) {
      out << line << "\n";
    }
    previous = line;
    if (event.terminal()) break;
  }
  if (tty) out << "\n";
  grpc::Status status = reader->Finish();
  if (!status.ok()) return client::FromGrpcStatus(status);
  return last;
}

}  // namespace segserve::segctl
