#include "tests/testing/commands.h"

#include <stdio.h>
#include <sys/wait.h>

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

}  // namespace segserve::testing
