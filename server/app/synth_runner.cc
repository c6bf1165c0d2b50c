#include "server/app/synth_runner.h"

#include <chrono>
#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/data/shift.h"
#include "server/data/synthetic.h"

namespace segserve::app {
namespace fs = std::filesystem;
namespace {
constexpr std::chrono::milliseconds kProgressInterval{500};
}  // namespace

absl::Status SynthRunner::Run(const scheduler::Job& job, scheduler::JobContext& ctx) {
  const nlohmann::json spec = nlohmann::json::parse(job.spec_json, nullptr, false);
  if (spec.is_discarded() || !spec.contains("name")) {
    return absl::InvalidArgumentError("synth job spec is not valid JSON with a name");
  }
  data::SyntheticDatasetOptions options;
  options.name = spec.value("name", "");
  options.count = spec.value("n", 500);
  options.seed = spec.value("seed", uint64_t{1});
  options.sample.size = spec.value("size", 256);
  if (spec.contains("shift")) {
    ASSIGN_OR_RETURN(options.shift, data::ParseShift(spec["shift"].get<std::string>(), "shift"));
  }
  const std::string final_dir = index_.datasets_dir() + "/" + options.name;
  const std::string tmp_dir = index_.datasets_dir() + "/.tmp-" + options.name + "-" + job.id;
  std::error_code ec;
  if (fs::exists(final_dir, ec)) {
    // This job's own set, published before a crash: only the index entry may be missing.
    absl::StatusOr<std::string> marker = common::ReadFile(final_dir + "/" + kMarkerFile);
    const nlohmann::json mark =
        marker.ok() ? nlohmann::json::parse(*marker, nullptr, false) : nlohmann::json();
    if (mark.is_object() && mark.value("job_id", "") == job.id) {
      return Publish(options, final_dir, job.progress, ctx);
    }
    return absl::AlreadyExistsError(absl::StrCat("data set '", options.name, "' already exists"));
  }
  ASSIGN_OR_RETURN(bool taken, index_.Contains(options.name));
  if (taken) {
    return absl::AlreadyExistsError(absl::StrCat("data set '", options.name, "' already exists"));
  }
  fs::remove_all(tmp_dir, ec);
  scheduler::JobProgress progress;
  progress.steps = options.count;
  ctx.ReportProgress(progress);
  // Images written of n, rate and ETA (shown by `segctl datasets generate --wait`), at
  // most every kProgressInterval: every report is an event to each watcher.
  const auto start = std::chrono::steady_clock::now();
  auto last_report = start;
  std::mutex progress_mu;
  options.on_image_written = [&](int written) {
    std::lock_guard<std::mutex> lock(progress_mu);
    const auto now = std::chrono::steady_clock::now();
    if (written < options.count && now - last_report < kProgressInterval) return;
    last_report = now;
    const double seconds = std::chrono::duration<double>(now - start).count();
    scheduler::JobProgress p;
    p.step = written;
    p.steps = options.count;
    p.fraction = static_cast<double>(written) / options.count;
    p.images_per_second = seconds > 0 ? written / seconds : 0;
    p.eta_seconds = p.images_per_second > 0 ? (options.count - written) / p.images_per_second : 0;
    ctx.ReportProgress(p);
  };
  if (absl::Status generated = data::GenerateSyntheticDataset(tmp_dir, options); !generated.ok()) {
    // A full disk must not leave a partial data set behind (it was never visible).
    fs::remove_all(tmp_dir, ec);
    return generated;
  }
  if (ctx.cancelled()) {
    fs::remove_all(tmp_dir, ec);
    return absl::CancelledError("cancelled");
  }
  RETURN_IF_ERROR(common::WriteFileAtomically(tmp_dir + "/" + kMarkerFile,
                                              nlohmann::json{{"job_id", job.id}}.dump() + "\n"));
  fs::rename(tmp_dir, final_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot publish ", final_dir, ": ", ec.message()));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress.images_per_second = seconds > 0 ? options.count / seconds : 0;
  return Publish(options, final_dir, progress, ctx);
}

absl::Status SynthRunner::Publish(const data::SyntheticDatasetOptions& options,
                                  const std::string& final_dir, scheduler::JobProgress progress,
                                  scheduler::JobContext& ctx) {
  data::OpenOptions open;
  open.verify_contents = false;
  open.volume_cache_bytes = 0;
  ASSIGN_OR_RETURN(data::Dataset published, data::OpenDataset(final_dir, open));
  RETURN_IF_ERROR(index_.Record(data::EntryOf(options.name, published)));
  progress.step = options.count;
  progress.steps = options.count;
  progress.fraction = 1;
  ctx.ReportProgress(progress);
  ctx.SetResult(nlohmann::json{{"dataset", options.name}, {"images", options.count}}.dump());
  return absl::OkStatus();
}

}  // namespace segserve::app
