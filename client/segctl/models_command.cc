// `segctl models list|get|load|unload|alias|import|export|delete`.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/lib/lifecycle.h"
#include "client/lib/model_transfer.h"
#include "client/segctl/commands.h"
#include "client/segctl/model_output.h"
#include "client/segctl/table.h"
#include "segserve/v1/models.grpc.pb.h"

namespace segserve::segctl {
namespace {

const char* StateName(v1::LoadState state) {
  switch (state) {
    case v1::LOAD_STATE_LOADED: return "LOADED";
    case v1::LOAD_STATE_LOADING: return "LOADING";
    case v1::LOAD_STATE_FAILED: return "FAILED";
    default: return "UNLOADED";
  }
}

const char* EncoderName(v1::Encoder encoder) {
  return encoder == v1::ENCODER_RESNET18 ? "resnet18" : "resnet34";
}

std::string ConfigText(const v1::ModelConfig& config) {
  return absl::StrCat(EncoderName(config.encoder()), " L", config.skip_prune_level(),
                      " in=", config.in_channels(), " classes=", config.classes());
}

// "name" or "name:version".
absl::StatusOr<v1::ModelRef> ParseRef(const std::string& text) {
  v1::ModelRef ref;
  const auto colon = text.rfind(':');
  ref.set_name(text.substr(0, colon));
  if (ref.name().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no model name in '", text, "'"));
  }
  if (colon != std::string::npos) {
    int64_t version = 0;
    if (!absl::SimpleAtoi(text.substr(colon + 1), &version) || version < 1) {
      return absl::InvalidArgumentError(absl::StrCat("bad model version in '", text, "'"));
    }
    ref.set_version(version);
  }
  return ref;
}

const CLI::Validator& RefValidator() {
  static const CLI::Validator validator(
      [](std::string& value) -> std::string {
        auto ref = ParseRef(value);
        return ref.ok() ? std::string() : std::string(ref.status().message());
      },
      "NAME[:VERSION]", "model_ref");
  return validator;
}

// One line: what load/unload/import answer.
void PrintModelLine(std::ostream& out, const v1::ModelInfo& m) {
  out << m.name() << ":" << m.version() << "  " << StateName(m.state()) << "  "
      << ConfigText(m.config());
  if (m.aliases_size() > 0) out << "  aliases=" << absl::StrJoin(m.aliases(), ",");
  if (!m.load_error().empty()) out << "  error=" << m.load_error();
  out << "\n";
}

// Adds `models VERB REF` (get, load, unload).
void AddRefCommand(CLI::App* models, Invocation& invocation, const char* verb,
                   const char* description) {
  auto ref = std::make_shared<std::string>();
  CLI::App* command = models->add_subcommand(verb, description);
  command->add_option("model", *ref, "model name, name:version or alias")
      ->required()
      ->check(RefValidator());
  SetExamples(command, {absl::StrCat("segctl models ", verb, " l1-pruned"),
                        absl::StrCat("segctl models ", verb, " plasmodium-resnet18-l1:2")});
  const std::string name = verb;
  SetAction(command, invocation,
            [ref, name](const GlobalOptions& global, std::ostream& out, std::ostream& err) -> int {
              auto parsed = ParseRef(*ref);
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              auto stub = v1::Models::NewStub((*client)->channel());
              auto context = (*client)->NewContext();
              v1::ModelInfo info;
              grpc::Status status;
              if (name == "get") {
                v1::GetModelRequest request;
                *request.mutable_model() = *parsed;
                status = stub->Get(context.get(), request, &info);
              } else if (name == "load") {
                v1::LoadModelRequest request;
                *request.mutable_model() = *parsed;
                status = stub->Load(context.get(), request, &info);
              } else {
                v1::UnloadModelRequest request;
                *request.mutable_model() = *parsed;
                status = stub->Unload(context.get(), request, &info);
              }
              if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
              if (name == "get") {
                PrintModelDetails(out, info);
              } else {
                PrintModelLine(out, info);
              }
              return kExitOk;
            });
}

void AddList(CLI::App* models, Invocation& invocation) {
  auto name = std::make_shared<std::string>();
  CLI::App* list = models->add_subcommand("list", "registered models: version, state, config, "
                                                  "test IoU, aliases");
  list->add_option("--name", *name, "only this model name");
  SetExamples(list, {"segctl models list", "segctl models list --name plasmodium-resnet18-l1"},
              "'segctl models get NAME:VERSION' shows all metrics of one model.");
  SetAction(list, invocation,
            [name](const GlobalOptions& global, std::ostream& out, std::ostream& err) -> int {
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              auto stub = v1::Models::NewStub((*client)->channel());
              auto context = (*client)->NewContext();
              v1::ListModelsRequest request;
              request.set_name(*name);
              v1::ListModelsResponse response;
              grpc::Status status = stub->List(context.get(), request, &response);
              if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
              if (response.models_size() == 0) {
                out << "no models in the store\n";
              } else {
                PrintModelTable(out, response);
              }
              const std::map<std::string, std::string> aliases(response.aliases().begin(),
                                                               response.aliases().end());
              for (const auto& [alias, target] : aliases) {
                out << "alias " << alias << " -> " << target << "\n";
              }
              return kExitOk;
            });
}

void AddAlias(CLI::App* models, Invocation& invocation) {
  struct Options {
    std::string alias, target;
  };
  auto o = std::make_shared<Options>();
  CLI::App* alias = models->add_subcommand("alias", "point ALIAS at a model version");
  alias->add_option("alias", o->alias, "alias name (e.g. baseline)")->required();
  alias->add_option("model", o->target, "model name or name:version")
      ->required()
      ->check(RefValidator());
  SetExamples(alias, {"segctl models alias baseline mymodel",
                      "segctl models alias l1-pruned plasmodium-resnet18-l1:3"});
  SetAction(alias, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) -> int {
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              auto stub = v1::Models::NewStub((*client)->channel());
              auto context = (*client)->NewContext();
              v1::SetAliasRequest request;
              request.set_alias(o->alias);
              *request.mutable_model() = *ParseRef(o->target);
              v1::SetAliasResponse response;
              grpc::Status status = stub->SetAlias(context.get(), request, &response);
              if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
              out << "alias " << o->alias << " -> " << o->target << "\n";
              return kExitOk;
            });
}

// A progress line on stderr for a transfer ("imported 12.0 of 93.4 MiB (13%), 45.1 MB/s"),
// rewritten in place on a terminal (at most every 5%), printed once at the end otherwise.
class TransferMeter {
 public:
  TransferMeter(std::ostream& err, const char* verb)
      : err_(err), verb_(verb), tty_(isatty(STDERR_FILENO) == 1),
        start_(std::chrono::steady_clock::now()) {}

  client::TransferProgress Callback() {
    return [this](int64_t done, int64_t total) {
      done_ = done;
      total_ = total;
      const int percent = total > 0 ? static_cast<int>(100 * done / total) : 100;
      if (tty_ && (percent >= last_percent_ + 5 || done == total)) {
        err_ << "\r" << Line() << std::flush;
        last_percent_ = percent;
      }
    };
  }
  // The final line (after a successful transfer).
  void Done() {
    if (tty_) err_ << "\r";
    err_ << Line() << "\n";
  }

 private:
  std::string Line() const {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    char text[160];
    std::snprintf(text, sizeof(text), "%s %.1f of %.1f MiB (%d%%), %.1f MB/s", verb_,
                  static_cast<double>(done_) / (1 << 20), static_cast<double>(total_) / (1 << 20),
                  total_ > 0 ? static_cast<int>(100 * done_ / total_) : 100,
                  seconds > 0 ? static_cast<double>(done_) / 1e6 / seconds : 0.0);
    return text;
  }

  std::ostream& err_;
  const char* verb_;
  const bool tty_;
  const std::chrono::steady_clock::time_point start_;
  int64_t done_ = 0;
  int64_t total_ = 0;
  int last_percent_ = -5;
};

void AddImport(CLI::App* models, Invocation& invocation) {
  struct Options {
    std::string file, name, encoder = "resnet34";
    int prune_level = 1, in_channels = 3, classes = 2;
    bool encoder_only = false, load = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* import = models->add_subcommand(
      "import", "store a PyTorch state dict as the next version of a model");
  import->add_option("--file", o->file, "state dict saved with torch.save(model.state_dict(), f)")
      ->required();
  import->add_option("--name", o->name, "model name")->required();
  import->add_option("--encoder", o->encoder, "encoder of the U-net")
      ->check(CLI::IsMember({"resnet18", "resnet34"}))
      ->capture_default_str();
  import->add_option("--prune-level", o->prune_level, "skip connections pruned (0..4)")
      ->check(CLI::Range(0, 4))
      ->capture_default_str();
  import->add_option("--in-channels", o->in_channels, "input channels (1..4)")
      ->check(CLI::Range(1, 4))
      ->capture_default_str();
  import->add_option("--classes", o->classes, "output classes (>= 2)")
      ->check(CLI::Range(2, 1000))
      ->capture_default_str();
  import->add_flag("--encoder-only", o->encoder_only,
                   "the file is a torchvision ResNet: load the encoder alone");
  import->add_flag("--load", o->load, "load the new version for serving at once");
  SetExamples(import,
              {"segctl models import --file w.pt --name mymodel --encoder resnet34 "
               "--prune-level 0 --classes 2 --load",
               "segctl models import --file resnet34.pth --name pre --encoder-only"},
              "The file comes from segmentation_models_pytorch's Unet (or, with\n"
              "--encoder-only, a torchvision ResNet); nothing is downloaded.");
  SetAction(import, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) -> int {
              v1::ImportModelRequest request;
              request.set_name(o->name);
              request.mutable_config()->set_encoder(
                  o->encoder == "resnet18" ? v1::ENCODER_RESNET18 : v1::ENCODER_RESNET34);
              request.mutable_config()->set_skip_prune_level(o->prune_level);
              request.mutable_config()->set_in_channels(o->in_channels);
              request.mutable_config()->set_classes(o->classes);
              request.set_non_strict(o->encoder_only);
              request.set_load(o->load);
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              // Streamed (Models.ImportStream): no message-size ceiling; the server checks
              // the size and SHA-256 segctl computed.
              TransferMeter meter(err, "imported");
              auto info = client::ImportModelFile(**client, request, o->file, meter.Callback());
              if (!info.ok()) return ReportError(err, info.status());
              meter.Done();
              PrintModelLine(out, *info);
              return kExitOk;
            });
}

void AddExport(CLI::App* models, Invocation& invocation) {
  struct Options {
    std::string ref, out, format = "smp";
  };
  auto o = std::make_shared<Options>();
  CLI::App* command = models->add_subcommand(
      "export", "write a stored model version as a PyTorch state dict (torch.save format)");
  command->add_option("model", o->ref, "model name, name:version or alias")
      ->required()
      ->check(RefValidator());
  command->add_option("--out", o->out, "the file to write (written whole or not at all)")
      ->required();
  command->add_option("--format", o->format,
                      "smp: segmentation_models_pytorch Unet keys (every weight); "
                      "torchvision-encoder: the encoder alone, torchvision ResNet keys")
      ->check(CLI::IsMember({"smp", "torchvision-encoder"}))
      ->capture_default_str();
  SetExamples(command,
              {"segctl models export l1-pruned --out l1.pt",
               "segctl models export mymodel:2 --out enc.pt --format torchvision-encoder"},
              "In Python: model.load_state_dict(torch.load(\"l1.pt\")) into smp's\n"
              "Unet(encoder_name=..., in_channels=..., classes=...) (L0 models; pruned levels\n"
              "have fewer decoder input channels). The file's SHA-256 is checked on arrival.");
  SetAction(command, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) -> int {
              auto ref = ParseRef(o->ref);
              if (!ref.ok()) return ReportError(err, ref.status());
              v1::ExportModelRequest request;
              *request.mutable_model() = *ref;
              request.set_format(o->format == "smp"
                                     ? v1::ExportModelRequest::FORMAT_SMP
                                     : v1::ExportModelRequest::FORMAT_TORCHVISION_ENCODER);
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              TransferMeter meter(err, "exported");
              auto header = client::ExportModelToFile(**client, request, o->out, meter.Callback());
              if (!header.ok()) return ReportError(err, header.status());
              meter.Done();
              out << header->model().name() << ":" << header->model().version() << " -> "
                  << o->out << "  " << header->tensors() << " tensors, " << header->size_bytes()
                  << " bytes, sha256 " << header->sha256() << "\n";
              return kExitOk;
            });
}

void AddDelete(CLI::App* models, Invocation& invocation) {
  auto ref = std::make_shared<std::string>();
  CLI::App* command = models->add_subcommand(
      "delete", "delete a model version, or every version of a name, from the store (admin)");
  command->add_option("model", *ref, "NAME:VERSION for one version, NAME for every version")
      ->required()
      ->check(RefValidator());
  SetExamples(
      command, {"segctl models delete plasmodium-resnet18-l1:2", "segctl models delete scratch"},
      "Refused while an alias points at the version (re-point it with 'segctl models alias'\n"
      "first). A loaded version is unloaded: running calls finish, later ones get NOT_FOUND.");
  SetAction(command, invocation,
            [ref](const GlobalOptions& global, std::ostream& out, std::ostream& err) -> int {
              auto parsed = ParseRef(*ref);
              auto client = client::Client::Create(global.client);
              if (!client.ok()) return ReportError(err, client.status());
              // version 0 (no ":VERSION"): every version of the name.
              auto deleted = client::DeleteModel(**client, parsed->name(), parsed->version());
              if (!deleted.ok()) return ReportError(err, deleted.status());
              out << "deleted " << parsed->name() << " version"
                  << (deleted->deleted_versions_size() == 1 ? " " : "s ")
                  << absl::StrJoin(deleted->deleted_versions(), ",") << " ("
                  << client::HumanBytes(deleted->freed_bytes()) << " freed)\n";
              return kExitOk;
            });
}

}  // namespace

void PrintModelDetails(std::ostream& out, const v1::ModelInfo& m) {
  Table fields({"field", "value"});
  fields.AddRow({"model", absl::StrCat(m.name(), ":", m.version())});
  fields.AddRow({"state", StateName(m.state())});
  if (!m.precision().empty()) fields.AddRow({"serving precision", m.precision()});
  fields.AddRow({"config", ConfigText(m.config())});
  fields.AddRow({"aliases", m.aliases_size() ? absl::StrJoin(m.aliases(), ",") : "-"});
  if (m.created_unix_seconds() > 0) {
    const std::time_t created = static_cast<std::time_t>(m.created_unix_seconds());
    char text[32];
    std::tm tm{};
    gmtime_r(&created, &tm);
    std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fields.AddRow({"created", text});
  }
  fields.AddRow({"source job", m.source_job_id().empty() ? "- (imported)" : m.source_job_id()});
  fields.AddRow({"reference stats", m.has_reference_stats() ? "yes" : "no"});
  if (m.checkpoint_bytes() > 0) {
    fields.AddRow({"checkpoint", absl::StrCat(m.checkpoint_bytes(), " bytes, sha256:",
                                              m.checkpoint_sha256())});
  }
  if (m.disk_bytes() > 0) fields.AddRow({"size on disk", client::HumanBytes(m.disk_bytes())});
  if (!m.load_error().empty()) fields.AddRow({"load error", m.load_error()});
  std::vector<std::pair<std::string, double>> metrics(m.metrics().begin(), m.metrics().end());
  std::sort(metrics.begin(), metrics.end(),
            [](const auto& a, const auto& b) { return NaturalLess(a.first, b.first); });
  // Header-less key/value listing: skip the "field value" header line.
  std::ostringstream text;
  fields.Print(text);
  const std::string printed = text.str();
  out << printed.substr(printed.find('\n') + 1);
  if (!metrics.empty()) {
    out << "\n";
    Table table({"metric", "value"});
    table.AlignRight(1);
    for (const auto& [key, value] : metrics) table.AddRow({key, FormatMetric(value)});
    table.Print(out);
  }
}

void PrintModelTable(std::ostream& out, const v1::ListModelsResponse& response) {
  Table table({"NAME", "VERSION", "STATE", "CONFIG", "TEST IoU", "SIZE", "ALIASES"});
  table.AlignRight(1);
  table.AlignRight(4);
  table.AlignRight(5);
  for (const auto& m : response.models()) {
    auto test = m.metrics().find("test_iou");
    // "LOADED bf16": the arithmetic a loaded version serves in (--precision).
    const std::string state = m.precision().empty()
                                  ? std::string(StateName(m.state()))
                                  : absl::StrCat(StateName(m.state()), " ", m.precision());
    table.AddRow({m.name(), absl::StrCat(m.version()), state, ConfigText(m.config()),
                  test == m.metrics().end() ? "-" : FormatMetric(test->second),
                  client::HumanBytes(m.disk_bytes()), absl::StrJoin(m.aliases(), ",")});
  }
  table.Print(out);
  for (const auto& m : response.models()) {
    if (!m.load_error().empty()) {
      out << m.name() << ":" << m.version() << ": load failed: " << m.load_error() << "\n";
    }
  }
}

void AddModelsCommands(CLI::App& segctl, Invocation& invocation) {
  CLI::App* models = segctl.add_subcommand(
      "models", "list, inspect, load, unload, alias, import, export and delete models");
  models->require_subcommand(1);
  SetExamples(models, {"segctl models list", "segctl models get l1-pruned",
                       "segctl models alias baseline mymodel"},
              "MODEL may be a name, name:version or an alias (baseline, l1-pruned).");
  AddList(models, invocation);
  AddRefCommand(models, invocation, "get", "one model version: config, state, all metrics");
  AddRefCommand(models, invocation, "load", "load a model version for serving");
  AddRefCommand(models, invocation, "unload", "unload a model version");
  AddAlias(models, invocation);
  AddImport(models, invocation);
  AddExport(models, invocation);
  AddDelete(models, invocation);
}

}  // namespace segserve::segctl
