// `segctl datasets list|generate|upload|delete`.
#include <chrono>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/lib/dataset_upload.h"
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

struct UploadOptions {
  std::string dir, name, layout;
  bool quiet = false;
};

int Upload(const UploadOptions& o, const GlobalOptions& global, std::ostream& out,
           std::ostream& err) {
  auto plan = client::PlanUpload(o.dir, o.name, o.layout);
  if (!plan.ok()) return ReportError(err, plan.status());
  if (!plan->skipped.empty()) {
    err << "segctl: not sending " << plan->skipped.size() << " file(s) outside the layout, e.g. "
        << plan->skipped.front() << "\n";
  }
  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  const auto start = std::chrono::steady_clock::now();
  auto last_shown = start - std::chrono::seconds(1);
  const auto show = [&](int64_t sent, int64_t total, bool final) {
    const auto now = std::chrono::steady_clock::now();
    if (o.quiet || (!final && now - last_shown < std::chrono::milliseconds(200))) return;
    last_shown = now;
    const double seconds = std::chrono::duration<double>(now - start).count();
    err << absl::StrFormat("\ruploading %s: %.1f / %.1f MB (%3.0f%%), %.1f MB/s", o.name,
                           sent / 1e6, total / 1e6, total > 0 ? 100.0 * sent / total : 100.0,
                           seconds > 0 ? sent / 1e6 / seconds : 0.0)
        << (final ? "\n" : "") << std::flush;
  };
  int64_t sent_bytes = 0;
  auto info = client::UploadDataset(**client, *plan, 1 << 20, [&](int64_t sent, int64_t total) {
    sent_bytes = sent;
    show(sent, total, false);
  });
  show(sent_bytes, plan->total_bytes, true);
  if (!info.ok()) return ReportError(err, info.status());
  auto split = [&](const char* s) { return SplitSize(*info, s); };
  out << "uploaded data set " << info->name() << ": " << info->images() << " images ("
      << split("train") << "/" << split("val") << "/" << split("test") << " train/val/test), "
      << info->channels() << " channel(s), classes " << absl::StrJoin(info->class_names(), ",")
      << ", " << client::HumanBytes(info->disk_bytes()) << "\n";
  return kExitOk;
}

void AddUpload(CLI::App* datasets, Invocation& invocation) {
  auto o = std::make_shared<UploadOptions>();
  CLI::App* upload = datasets->add_subcommand(
      "upload", "upload a local labelled data set (native or nnU-Net layout; admin)");
  upload->add_option("dir", o->dir, "local data-set directory")->required();
  upload->add_option("--name", o->name, "name of the data set on the server")->required();
  upload
      ->add_option("--layout", o->layout,
                   "native (dataset.json, images/, masks/) or nnunet (dataset.json, "
                   "imagesTr/, labelsTr/); detected when omitted")
      ->check(CLI::IsMember({"native", "nnunet"}));
  upload->add_flag("--quiet", o->quiet, "no progress line on stderr");
  SetExamples(upload,
              {"segctl datasets upload ./smears --name smears",
               "segctl datasets upload ./Dataset042_Cells --name cells --layout nnunet"},
              "The server validates the whole set (every image decodes, masks match their "
              "images and hold only declared classes) before it appears in `datasets list`; "
              "a rejection names the file. Running the same command again after a broken "
              "connection starts the upload afresh; after a success it answers at once. "
              "nnU-Net sets are stored in the native layout (70/15/15 splits).");
  SetAction(upload, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) {
              return Upload(*o, global, out, err);
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
      "datasets", "list, upload and delete server-side data sets; generate synthetic ones");
  datasets->require_subcommand(1);
  SetExamples(datasets,
              {"segctl datasets list", "segctl datasets generate --name smears --n 500 --wait",
               "segctl datasets upload ./smears --name smears"});
  AddList(datasets, invocation);
  AddGenerate(datasets, invocation);
  AddUpload(datasets, invocation);
  AddDelete(datasets, invocation);
}

}  // namespace segserve::segctl
