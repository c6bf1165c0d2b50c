#include "server/app/synth_runner.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/status_macros.h"
#include "server/data/shift.h"
#include "server/data/synthetic.h"

namespace segserve::app {
namespace fs = std::filesystem;

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
  const std::string final_dir = data_dir_ + "/datasets/" + options.name;
  const std::string tmp_dir = data_dir_ + "/datasets/.tmp-" + options.name + "-" + job.id;
  std::error_code ec;
  if (fs::exists(final_dir, ec)) {
    return absl::AlreadyExistsError(absl::StrCat("data set '", options.name, "' already exists"));
  }
  fs::remove_all(tmp_dir, ec);
  scheduler::JobProgress progress;
  progress.fraction = 0;
  ctx.ReportProgress(progress);
  if (absl::Status generated = data::GenerateSyntheticDataset(tmp_dir, options); !generated.ok()) {
    // A full disk must not leave a partial data set behind (it was never visible).
    fs::remove_all(tmp_dir, ec);
    return generated;
  }
  if (ctx.cancelled()) {
    fs::remove_all(tmp_dir, ec);
    return absl::CancelledError("cancelled");
  }
  fs::rename(tmp_dir, final_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot publish ", final_dir, ": ", ec.message()));
  progress.fraction = 1;
  ctx.ReportProgress(progress);
  ctx.SetResult(nlohmann::json{{"dataset", options.name}, {"images", options.count}}.dump());
  return absl::OkStatus();
}

}  // namespace segserve::app
