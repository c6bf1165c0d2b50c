// `segctl jobs list|get|cancel|watch|purge`.
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/lib/lifecycle.h"
#include "client/segctl/commands.h"
#include "client/segctl/job_output.h"
#include "client/segctl/table.h"
#include "segserve/v1/training.grpc.pb.h"
#include "server/common/dir_util.h"

namespace segserve::segctl {
namespace {

void AddList(CLI::App* jobs, Invocation& invocation) {
  struct Options {
    std::string state;
    int limit = 20;
  };
  auto o = std::make_shared<Options>();
  CLI::App* list = jobs->add_subcommand("list", "recent jobs: kind, state, progress, model");
  list->add_option("--state", o->state, "only jobs in this state")
      ->check(CLI::IsMember({"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"},
                            CLI::ignore_case))
      ->transform([](std::string value) { return absl::AsciiStrToUpper(value); });
  list->add_option("--limit", o->limit, "at most this many jobs")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  SetExamples(list, {"segctl jobs list", "segctl jobs list --state RUNNING --limit 5"});
  SetAction(list, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) -> int {
              v1::ListJobsRequest request;
              request.set_page_size(o->limit);
              if (!o->state.empty()) {
                v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
                v1::JobState_Parse("JOB_STATE_" + o->state, &state);
                request.add_states(state);
              }
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              auto stub = v1::Training::NewStub((*client)->channel());
              auto context = (*client)->NewContext();
              v1::ListJobsResponse response;
              grpc::Status status = stub->ListJobs(context.get(), request, &response);
              if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
              if (response.jobs_size() == 0) {
                out << "no jobs\n";
                return kExitOk;
              }
              PrintJobTable(out, {response.jobs().begin(), response.jobs().end()});
              return kExitOk;
            });
}

// `jobs get|cancel|watch JOB_ID`.
void AddJobIdCommand(CLI::App* jobs, Invocation& invocation, const std::string& verb,
                     const std::string& description, const std::string& notes) {
  auto job_id = std::make_shared<std::string>();
  CLI::App* command = jobs->add_subcommand(verb, description);
  command->add_option("job_id", *job_id, "the job's id (segctl jobs list)")->required();
  SetExamples(command, {"segctl jobs " + verb + " 3f2a9c0e"}, notes);
  SetAction(command, invocation,
            [job_id, verb](const GlobalOptions& global, std::ostream& out,
                           std::ostream& err) -> int {
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              if (verb == "watch") {
                auto job = WatchJob(**client, *job_id, out);
                if (!job.ok()) return ReportError(err, job.status());
                PrintJob(out, *job, TerminalWidth());
                return job->state() == v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitError;
              }
              auto stub = v1::Training::NewStub((*client)->channel());
              auto context = (*client)->NewContext();
              v1::JobRef ref;
              ref.set_job_id(*job_id);
              v1::Job job;
              grpc::Status status = verb == "get" ? stub->GetJob(context.get(), ref, &job)
                                                  : stub->CancelJob(context.get(), ref, &job);
              if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
              PrintJob(out, job, TerminalWidth());
              return kExitOk;
            });
}

void AddPurge(CLI::App* jobs, Invocation& invocation) {
  auto older_than = std::make_shared<std::string>();
  CLI::App* purge =
      jobs->add_subcommand("purge", "remove finished jobs' records and run directories (admin)");
  purge
      ->add_option("--older-than", *older_than,
                   "only jobs that finished at least this long ago: 30d, 12h, 90m, 2w, 0")
      ->required()
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            // CLI11 puts the option's name in front of the message.
            auto age = common::ParseAge(value, "AGE");
            return age.ok() ? std::string() : std::string(age.status().message());
          },
          "AGE", "age"));
  SetExamples(purge, {"segctl jobs purge --older-than 30d"},
              "Queued and running jobs are never touched; registered models and data sets\n"
              "stay. A sweep goes together with its children.");
  SetAction(purge, invocation,
            [older_than](const GlobalOptions& global, std::ostream& out, std::ostream& err) -> int {
              auto age = common::ParseAge(*older_than, "--older-than");
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              auto purged = client::PurgeJobs(**client, *age);
              if (!purged.ok()) return ReportError(err, purged.status());
              for (const std::string& id : purged->job_ids()) out << "purged " << id << "\n";
              out << purged->job_ids_size() << " job(s) purged, "
                  << client::HumanBytes(purged->freed_bytes()) << " of run files freed\n";
              return kExitOk;
            });
}

}  // namespace

void AddJobsCommands(CLI::App& segctl, Invocation& invocation) {
  CLI::App* jobs = segctl.add_subcommand("jobs", "list, inspect, cancel, watch and purge jobs");
  jobs->require_subcommand(1);
  SetExamples(jobs, {"segctl jobs list", "segctl jobs watch <sweep-job-id>"});
  AddList(jobs, invocation);
  AddJobIdCommand(jobs, invocation, "get", "one job: state, metrics, children, sweep table",
                  "A sweep's table is as wide as the terminal ($COLUMNS, default 100).");
  AddJobIdCommand(jobs, invocation, "cancel", "cancel a queued or running job", "");
  AddJobIdCommand(jobs, invocation, "watch",
                  "follow a job live (epoch, loss, val IoU, ETA) until it ends",
                  "Exits 0 when the job SUCCEEDED, 1 otherwise.");
  AddPurge(jobs, invocation);
}

}  // namespace segserve::segctl
