// `segctl datasets list|generate|delete`.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/lib/lifecycle.h"
#include "client/segctl/commands.h"
#include "client/segctl/job_output.h"
#include "client/segctl/table.h"
#include "segserve/v1/datasets.grpc.pb.h"

namespace segserve::segctl {
namespace {

int SplitSize(const v1::DatasetInfo& d, const char* split) {
  auto it = d.splits().find(split);
  return it == d.splits().end() ? 0 : it->second;
}

void AddList(CLI::App* datasets, Invocation& invocation) {
  CLI::App* list = datasets->add_subcommand("list", "server-side data sets");
  SetExamples(list, {"segctl datasets list"});
  SetAction(list, invocation,
            [](const GlobalOptions& global, std::ostream& out, std::ostream& err) -> int {
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              auto stub = v1::Datasets::NewStub((*client)->channel());
              auto context = (*client)->NewContext();
              v1::ListDatasetsResponse response;
              grpc::Status status =
                  stub->List(context.get(), v1::ListDatasetsRequest(), &response);
              if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
              if (response.datasets_size() == 0) {
                out << "no data sets\n";
                return kExitOk;
              }
              Table table({"NAME", "IMAGES", "CHANNELS", "TRAIN/VAL/TEST", "SIZE", "CLASSES"});
              table.AlignRight(1);
              table.AlignRight(2);
              table.AlignRight(4);
              for (const auto& d : response.datasets()) {
                table.AddRow({d.name(), absl::StrCat(d.images()), absl::StrCat(d.channels()),
                              absl::StrCat(SplitSize(d, "train"), "/", SplitSize(d, "val"), "/",
                                           SplitSize(d, "test")),
                              client::HumanBytes(d.disk_bytes()),
                              absl::StrJoin(d.class_names(), ",")});
              }
              table.Print(out);
              return kExitOk;
            });
}

struct GenerateOptions {
  std::string name;
  int n = 500, size = 256;
  uint64_t seed = 1;
  std::string shift;
  bool wait = false;
};

int Generate(const GenerateOptions& o, const GlobalOptions& global, std::ostream& out,
             std::ostream& err) {
  v1::GenerateDatasetRequest request;
  request.set_name(o.name);
  request.set_n(o.n);
  request.set_size(o.size);
  request.set_seed(o.seed);
  if (!o.shift.empty()) *request.mutable_shift() = ShiftToProto(o.shift);
  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  auto stub = v1::Datasets::NewStub((*client)->channel());
  auto context = (*client)->NewContext();
  v1::Job job;
  grpc::Status status = stub->Generate(context.get(), request, &job);
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  out << "submitted synth " << job.job_id() << "\n";
  if (!o.wait) return kExitOk;
  auto done = WatchJob(**client, job.job_id(), out);
  if (!done.ok()) return ReportError(err, done.status());
  if (done->state() != v1::JOB_STATE_SUCCEEDED) {
    if (!done->reason().empty()) err << "segctl: " << done->reason() << "\n";
    return kExitError;
  }
  return kExitOk;
}

void AddGenerate(CLI::App* datasets, Invocation& invocation) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* generate = datasets->add_subcommand(
      "generate", "generate a synthetic plasmodium data set on the server (a job)");
  generate->add_option("--name", o->name, "data-set name")->required();
  generate->add_option("--n", o->n, "number of images")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  generate->add_option("--size", o->size, "width and height, a multiple of 32 in 32..2048")
      ->check(CLI::Range(32, 2048))
      ->capture_default_str();
  generate->add_option("--seed", o->seed, "random seed")->capture_default_str();
  generate->add_option("--shift", o->shift, "bake in a domain shift, e.g. brightness:3")
      ->check(ShiftValidator());
  generate->add_flag("--wait", o->wait, "follow the job: images written of n, rate, ETA");
  SetExamples(generate, {"segctl datasets generate --name smears --n 500 --wait",
                         "segctl datasets generate --name dark --n 100 --shift brightness:3"});
  SetAction(generate, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) {
              return Generate(*o, global, out, err);
            });
}

void AddDelete(CLI::App* datasets, Invocation& invocation) {
  auto name = std::make_shared<std::string>();
  CLI::App* command = datasets->add_subcommand("delete", "delete a server-side data set (admin)");
  command->add_option("name", *name, "data-set name")->required();
  SetExamples(command, {"segctl datasets delete smears"},
              "Refused while a queued or running job uses the data set (the message names it).");
  SetAction(command, invocation,
            [name](const GlobalOptions& global, std::ostream& out, std::ostream& err) -> int {
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              auto deleted = client::DeleteDataset(**client, *name);
              if (!deleted.ok()) return ReportError(err, deleted.status());
              out << "deleted data set " << *name << " ("
                  << client::HumanBytes(deleted->freed_bytes()) << " freed)\n";
              return kExitOk;
            });
}

}  // namespace

void AddDatasetsCommands(CLI::App& segctl, Invocation& invocation) {
  CLI::App* datasets = segctl.add_subcommand(
      "datasets", "list and delete server-side data sets; generate synthetic ones");
  datasets->require_subcommand(1);
  SetExamples(datasets, {"segctl datasets list",
                         "segctl datasets generate --name smears --n 500 --wait"});
  AddList(datasets, invocation);
  AddGenerate(datasets, invocation);
  AddDelete(datasets, invocation);
}

}  // namespace segserve::segctl
