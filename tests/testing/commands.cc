#include "tests/testing/commands.h"

#include <stdio.h>
#include <sys/wait.h>

#include <filesystem>

namespace segserve::testing {

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

v1::TrainSpec TinyTrainSpec(const std::string& dataset, int epochs, int max_steps) {
  v1::TrainSpec spec;
  spec.set_dataset(dataset);
  spec.add_encoders(v1::ENCODER_RESNET18);
  spec.add_prune_levels(1);
  spec.set_epochs(epochs);
  spec.set_batch_size(4);
  spec.set_learning_rate(3e-3f);
  if (max_steps > 0) spec.set_max_steps_per_epoch(max_steps);
  return spec;
}

v1::Job WatchUntilTerminal(v1::Training::Stub& training, const std::string& id,
                           std::chrono::seconds timeout,
                           const std::function<void(const v1::JobEvent&)>& on_event) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  v1::JobRef ref;
  ref.set_job_id(id);
  auto reader = training.WatchJob(&context, ref);
  v1::JobEvent event;
  v1::Job last;
  while (reader->Read(&event)) {
    last = event.job();
    if (on_event) on_event(event);
    if (event.terminal()) break;
  }
  context.TryCancel();
  reader->Finish();
  return last;
}

std::string FirstImageOf(const std::string& dataset_dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dataset_dir, ec)) {
    if (entry.path().extension() == ".png" &&
        entry.path().string().find("mask") == std::string::npos) {
      return entry.path().string();
    }
  }
  return "";
}

}  // namespace segserve::testing
