// `segctl models list|get|load|unload|import|alias`.
#include <iomanip>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/segctl/args.h"
#include "client/segctl/commands.h"
#include "segserve/v1/models.grpc.pb.h"
#include "server/common/file_util.h"

namespace segserve::segctl {
namespace {

constexpr char kModelsUsage[] =
    "usage: segctl models list [--name NAME]\n"
    "       segctl models get NAME[:VERSION]\n"
    "       segctl models load NAME[:VERSION]\n"
    "       segctl models unload NAME[:VERSION]\n"
    "       segctl models alias ALIAS NAME[:VERSION]\n"
    "       segctl models import --file STATE_DICT.pt --name NAME [--encoder resnet34]\n"
    "                            [--prune-level 1] [--in-channels 3] [--classes 2]\n"
    "                            [--encoder-only] [--load]\n"
    "  NAME may be an alias (baseline, l1-pruned). import sends a state dict saved with\n"
    "  torch.save(model.state_dict(), f) from segmentation_models_pytorch's Unet (or, with\n"
    "  --encoder-only, a torchvision ResNet) and stores it as the model's next version.\n";

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

// "name" or "name:version".
absl::StatusOr<v1::ModelRef> ParseRef(const std::string& text) {
  v1::ModelRef ref;
  const auto colon = text.rfind(':');
  ref.set_name(text.substr(0, colon));
  if (colon != std::string::npos) {
    int64_t version = 0;
    if (!absl::SimpleAtoi(text.substr(colon + 1), &version) || version < 1) {
      return absl::InvalidArgumentError(absl::StrCat("bad model version in '", text, "'"));
    }
    ref.set_version(version);
  }
  return ref;
}

void PrintModel(std::ostream& out, const v1::ModelInfo& m) {
  out << m.name() << ":" << m.version() << "  " << StateName(m.state()) << "  "
      << EncoderName(m.config().encoder()) << " L" << m.config().skip_prune_level() << "  in="
      << m.config().in_channels() << " classes=" << m.config().classes();
  if (m.aliases_size() > 0) {
    out << "  aliases=";
    for (int i = 0; i < m.aliases_size(); ++i) out << (i ? "," : "") << m.aliases(i);
  }
  for (const auto& [key, value] : m.metrics()) out << "  " << key << "=" << value;
  if (!m.load_error().empty()) out << "  error=" << m.load_error();
  out << "\n";
}

int Import(client::Client& client, const std::vector<std::string>& argv, std::ostream& out,
           std::ostream& err) {
  auto args = Args::Parse(argv, {"file", "name", "encoder", "prune-level", "in-channels", "classes"},
                          {"encoder-only", "load"});
  if (!args.ok()) {
    err << "segctl models import: " << args.status().message() << "\n" << kModelsUsage;
    return kExitUsage;
  }
  if (!args->Has("file") || !args->Has("name")) {
    err << "segctl models import: --file and --name are required\n" << kModelsUsage;
    return kExitUsage;
  }
  v1::ImportModelRequest request;
  request.set_name(args->Get("name"));
  const std::string encoder = args->Get("encoder", "resnet34");
  if (encoder != "resnet18" && encoder != "resnet34") {
    err << "segctl models import: --encoder must be resnet18 or resnet34\n";
    return kExitUsage;
  }
  request.mutable_config()->set_encoder(encoder == "resnet18" ? v1::ENCODER_RESNET18
                                                              : v1::ENCODER_RESNET34);
  auto level = args->GetInt("prune-level", 1);
  auto in_channels = args->GetInt("in-channels", 3);
  auto classes = args->GetInt("classes", 2);
  for (const auto* value : {&level, &in_channels, &classes}) {
    if (!value->ok()) {
      err << "segctl models import: " << value->status().message() << "\n";
      return kExitUsage;
    }
  }
  request.mutable_config()->set_skip_prune_level(static_cast<int>(*level));
  request.mutable_config()->set_in_channels(static_cast<int>(*in_channels));
  request.mutable_config()->set_classes(static_cast<int>(*classes));
  request.set_non_strict(args->Has("encoder-only"));
  request.set_load(args->Has("load"));
  auto bytes = common::ReadFile(args->Get("file"));
  if (!bytes.ok()) return ReportError(err, bytes.status());
  request.set_state_dict(std::move(*bytes));
  auto stub = v1::Models::NewStub(client.channel());
  auto context = client.NewContext();
  v1::ModelInfo info;
  grpc::Status status = stub->Import(context.get(), request, &info);
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  PrintModel(out, info);
  return kExitOk;
}

}  // namespace

int RunModels(const GlobalOptions& global, const std::vector<std::string>& argv,
              std::ostream& out, std::ostream& err) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "help") {
    (argv.empty() ? err : out) << kModelsUsage;
    return argv.empty() ? kExitUsage : kExitOk;
  }
  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  const std::string verb = argv[0];
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  auto stub = v1::Models::NewStub((*client)->channel());
  auto context = (*client)->NewContext();
  if (verb == "import") return Import(**client, rest, out, err);
  if (verb == "list") {
    auto args = Args::Parse(rest, {"name"}, {});
    if (!args.ok()) {
      err << "segctl models list: " << args.status().message() << "\n";
      return kExitUsage;
    }
    v1::ListModelsRequest request;
    request.set_name(args->Get("name"));
    v1::ListModelsResponse response;
    grpc::Status status = stub->List(context.get(), request, &response);
    if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
    if (response.models_size() == 0) out << "no models in the store\n";
    for (const auto& model : response.models()) PrintModel(out, model);
    for (const auto& [alias, target] : response.aliases()) {
      out << "alias " << alias << " -> " << target << "\n";
    }
    return kExitOk;
  }
  if (verb == "alias") {
    if (rest.size() != 2) {
      err << kModelsUsage;
      return kExitUsage;
    }
    auto ref = ParseRef(rest[1]);
    if (!ref.ok()) return ReportError(err, ref.status());
    v1::SetAliasRequest request;
    request.set_alias(rest[0]);
    *request.mutable_model() = *ref;
    v1::SetAliasResponse response;
    grpc::Status status = stub->SetAlias(context.get(), request, &response);
    if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
    out << "alias " << rest[0] << " -> " << rest[1] << "\n";
    return kExitOk;
  }
  if (rest.size() != 1 || (verb != "get" && verb != "load" && verb != "unload")) {
    err << "segctl models: unknown or incomplete command\n" << kModelsUsage;
    return kExitUsage;
  }
  auto ref = ParseRef(rest[0]);
  if (!ref.ok()) {
    err << "segctl models: " << ref.status().message() << "\n";
    return kExitUsage;
  }
  v1::ModelInfo info;
  grpc::Status status;
  if (verb == "get") {
    v1::GetModelRequest request;
    *request.mutable_model() = *ref;
    status = stub->Get(context.get(), request, &info);
  } else if (verb == "load") {
    v1::LoadModelRequest request;
    *request.mutable_model() = *ref;
    status = stub->Load(context.get(), request, &info);
  } else {
    v1::UnloadModelRequest request;
    *request.mutable_model() = *ref;
    status = stub->Unload(context.get(), request, &info);
  }
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  PrintModel(out, info);
  return kExitOk;
}

}  // namespace segserve::segctl
