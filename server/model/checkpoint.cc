#include "server/model/checkpoint.h"

#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/model/state_dict.h"
#include "server/model/torch_status.h"

namespace segserve::model {
namespace {

constexpr std::string_view kTrailerPrefix = "sha256:";
constexpr size_t kTrailerSize = 7 + 64;
constexpr size_t kPrefixSize = 8 + 8;

struct DtypeName {
  torch::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {{torch::kFloat32, "float32"}, {torch::kFloat64, "float64"},
                                 {torch::kFloat16, "float16"}, {torch::kBFloat16, "bfloat16"},
                                 {torch::kInt64, "int64"},     {torch::kInt32, "int32"}};

absl::StatusOr<std::string> DtypeToName(torch::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) return std::string(d.name);
  }
  return absl::InternalError(absl::StrCat("checkpoint: unsupported dtype ", c10::toString(type)));
}

absl::StatusOr<torch::ScalarType> NameToDtype(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.type;
  }
  return absl::DataLossError(absl::StrCat("checkpoint: unknown dtype \"", name, "\""));
}

void AppendUint64(std::string* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t ReadUint64(std::string_view bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  return value;
}

struct ParsedHeader {
  CheckpointInfo info;
  nlohmann::json tensors;
  std::string_view payload;
};

// Checks framing and checksum, parses the header JSON.
absl::StatusOr<ParsedHeader> ParseHeaderUnchecked(std::string_view bytes) {
  if (bytes.size() < kCheckpointMagic.size() ||
      bytes.substr(0, kCheckpointMagic.size()) != kCheckpointMagic) {
    return absl::InvalidArgumentError("not a segserve checkpoint (magic \"SEGCKPT1\" missing)");
  }
  if (bytes.size() < kPrefixSize + kTrailerSize) {
    return absl::DataLossError(absl::StrCat("checkpoint truncated: ", bytes.size(),
                                            " bytes is shorter than any checkpoint"));
  }
  const std::string_view body = bytes.substr(0, bytes.size() - kTrailerSize);
  const std::string_view trailer = bytes.substr(bytes.size() - kTrailerSize);
  if (trailer.substr(0, kTrailerPrefix.size()) != kTrailerPrefix) {
    return absl::DataLossError("checkpoint truncated or altered: checksum trailer missing");
  }
  const std::string actual = common::Sha256Hex(body);
  if (trailer.substr(kTrailerPrefix.size()) != actual) {
    return absl::DataLossError(
        absl::StrCat("checkpoint checksum mismatch (file altered or truncated): stored ",
                     std::string(trailer.substr(kTrailerPrefix.size())), ", computed ", actual));
  }
  const uint64_t header_length = ReadUint64(bytes.substr(8, 8));
  if (header_length > body.size() - kPrefixSize) {
    return absl::DataLossError("checkpoint header length exceeds the file");
  }
  nlohmann::json header = nlohmann::json::parse(body.substr(kPrefixSize, header_length), nullptr,
                                                /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::DataLossError("checkpoint header is not a JSON object");
  }
  if (header.value("format_version", 0) != kCheckpointFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported checkpoint format_version ",
                                                   header.value("format_version", 0), " (want ",
                                                   kCheckpointFormatVersion, ")"));
  }
  ParsedHeader parsed;
  auto config = UnetConfigFromJson(header.value("config", nlohmann::json()));
  if (!config.ok()) {
    return absl::DataLossError(absl::StrCat("checkpoint config: ", config.status().message()));
  }
  parsed.info.config = *config;
  parsed.info.metadata = header.value("metadata", nlohmann::json::object());
  parsed.tensors = header.value("tensors", nlohmann::json());
  parsed.payload = body.substr(kPrefixSize + header_length);
  if (!parsed.tensors.is_array() ||
      header.value("payload_bytes", uint64_t{0}) != parsed.payload.size()) {
    return absl::DataLossError("checkpoint tensor table or payload size inconsistent");
  }
  return parsed;
}

// Checks every entry of the tensor table against the payload (fields, dtype, shape, bounds)
// and hands each to `visit`.
using TensorVisitor =
    std::function<absl::Status(const std::string& name, torch::ScalarType dtype,
                               const std::vector<int64_t>& shape, std::string_view bytes)>;
absl::Status VisitTensorsUnchecked(const nlohmann::json& table, std::string_view payload,
                                   const TensorVisitor& visit) {
  for (const auto& entry : table) {
    if (!entry.is_object() || !entry.contains("name") || !entry.contains("dtype") ||
        !entry.contains("shape") || !entry.contains("offset") || !entry.contains("nbytes")) {
      return absl::DataLossError("checkpoint tensor table entry incomplete");
    }
    const std::string name = entry["name"].get<std::string>();
    ASSIGN_OR_RETURN(torch::ScalarType dtype, NameToDtype(entry["dtype"].get<std::string>()));
    const std::vector<int64_t> shape = entry["shape"].get<std::vector<int64_t>>();
    const uint64_t offset = entry["offset"].get<uint64_t>();
    const uint64_t nbytes = entry["nbytes"].get<uint64_t>();
    int64_t numel = 1;
    for (int64_t d : shape) {
      if (d < 0) return absl::DataLossError(absl::StrCat("checkpoint: bad shape for ", name));
      numel *= d;
    }
    if (static_cast<uint64_t>(numel) * c10::elementSize(dtype) != nbytes ||
        offset > payload.size() || nbytes > payload.size() - offset) {
      return absl::DataLossError(absl::StrCat("checkpoint: tensor ", name, " out of bounds"));
    }
    RETURN_IF_ERROR(visit(name, dtype, shape, payload.substr(offset, nbytes)));
  }
  return absl::OkStatus();
}

absl::StatusOr<StateDict> ParseTensorsUnchecked(const nlohmann::json& table,
                                                std::string_view payload) {
  StateDict state_dict;
  RETURN_IF_ERROR(VisitTensorsUnchecked(
      table, payload,
      [&](const std::string& name, torch::ScalarType dtype, const std::vector<int64_t>& shape,
          std::string_view bytes) {
        torch::Tensor tensor = torch::empty(shape, torch::TensorOptions().dtype(dtype));
        if (!bytes.empty()) std::memcpy(tensor.data_ptr(), bytes.data(), bytes.size());
        state_dict.emplace_back(name, std::move(tensor));
        return absl::OkStatus();
      }));
  return state_dict;
}

// A checksummed file can still be hand-made: JSON type errors become DataLoss, not crashes.
absl::StatusOr<ParsedHeader> ParseHeader(std::string_view bytes) {
  try {
    return ParseHeaderUnchecked(bytes);
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint header malformed: ", e.what()));
  }
}

absl::Status VerifyTensorTable(const nlohmann::json& table, std::string_view payload) {
  try {
    return VisitTensorsUnchecked(
        table, payload,
        [](const std::string&, torch::ScalarType, const std::vector<int64_t>&, std::string_view) {
          return absl::OkStatus();
        });
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint tensor table malformed: ", e.what()));
  }
}

absl::StatusOr<StateDict> ParseTensors(const nlohmann::json& table, std::string_view payload) {
  try {
    return ParseTensorsUnchecked(table, payload);
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint tensor table malformed: ", e.what()));
  }
}

}  // namespace

namespace {

// A checkpoint ready to be written: the header and the tensors it describes, in order.
struct PreparedCheckpoint {
  std::string prefix;  // magic, header length, header
  std::vector<torch::Tensor> tensors;
  size_t payload_bytes = 0;
  size_t total_bytes() const { return prefix.size() + payload_bytes + kTrailerSize; }
};

absl::StatusOr<PreparedCheckpoint> PrepareCheckpoint(Unet& model, const nlohmann::json& metadata) {
  if (model->folded()) {
    return absl::FailedPreconditionError(
        "cannot checkpoint a BatchNorm-folded model; save the unfolded one");
  }
  return CallTorch("serialising checkpoint", [&]() -> absl::StatusOr<PreparedCheckpoint> {
    PreparedCheckpoint out;
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& [name, value] : GetStateDict(*model)) {
      torch::Tensor t = value.detach().to(torch::kCPU).contiguous();
      ASSIGN_OR_RETURN(std::string dtype, DtypeToName(t.scalar_type()));
      const size_t nbytes = t.numel() * t.element_size();
      tensors.push_back({{"name", name},
                         {"dtype", dtype},
                         {"shape", t.sizes().vec()},
                         {"offset", out.payload_bytes},
                         {"nbytes", nbytes}});
      out.payload_bytes += nbytes;
      out.tensors.push_back(std::move(t));
    }
    const nlohmann::json header = {{"format_version", kCheckpointFormatVersion},
                                   {"config", ToJson(model->config())},
                                   {"metadata", metadata},
                                   {"payload_bytes", out.payload_bytes},
                                   {"tensors", tensors}};
    const std::string header_text = header.dump();
    out.prefix.append(kCheckpointMagic);
    AppendUint64(&out.prefix, header_text.size());
    out.prefix += header_text;
    return out;
  });
}

// Hands the checkpoint's bytes to `sink` in order, the tensors straight from their memory
// (no copy of the whole file), and the checksum trailer last.
absl::Status EmitCheckpoint(const PreparedCheckpoint& checkpoint,
                            const std::function<absl::Status(std::string_view)>& sink) {
  common::Sha256 sha;
  auto emit = [&](std::string_view bytes) {
    sha.Update(bytes);
    return sink(bytes);
  };
  RETURN_IF_ERROR(emit(checkpoint.prefix));
  for (const torch::Tensor& t : checkpoint.tensors) {
    RETURN_IF_ERROR(emit(std::string_view(static_cast<const char*>(t.data_ptr()),
                                          t.numel() * t.element_size())));
  }
  return sink(std::string(kTrailerPrefix) + common::DigestHex(sha.Finish()));
}

}  // namespace

absl::StatusOr<std::string> SerializeCheckpoint(Unet& model, const nlohmann::json& metadata) {
  ASSIGN_OR_RETURN(PreparedCheckpoint checkpoint, PrepareCheckpoint(model, metadata));
  // One buffer of the final size: the weights are held once more here, not twice.
  std::string out;
  out.reserve(checkpoint.total_bytes());
  RETURN_IF_ERROR(EmitCheckpoint(checkpoint, [&out](std::string_view bytes) {
    out.append(bytes);
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SaveCheckpoint(const std::string& path, Unet& model, const nlohmann::json& metadata) {
  ASSIGN_OR_RETURN(PreparedCheckpoint checkpoint, PrepareCheckpoint(model, metadata));
  ASSIGN_OR_RETURN(std::unique_ptr<common::AtomicFileWriter> file,
                   common::AtomicFileWriter::Create(path));
  RETURN_IF_ERROR(EmitCheckpoint(
      checkpoint, [&file](std::string_view bytes) { return file->Append(bytes); }));
  return file->Commit();
}

absl::StatusOr<LoadedCheckpoint> ParseCheckpoint(std::string_view bytes) {
  ASSIGN_OR_RETURN(ParsedHeader header, ParseHeader(bytes));
  return CallTorch("loading checkpoint", [&]() -> absl::StatusOr<LoadedCheckpoint> {
    ASSIGN_OR_RETURN(StateDict state_dict, ParseTensors(header.tensors, header.payload));
    LoadedCheckpoint loaded;
    loaded.info = std::move(header.info);
    loaded.model = Unet(loaded.info.config);
    auto report = LoadStateDict(loaded.model, state_dict);
    if (!report.ok()) {
      return absl::DataLossError(absl::StrCat("checkpoint weights: ", report.status().message()));
    }
    loaded.model->eval();
    return loaded;
  });
}

absl::StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, common::ReadFile(path));
  auto loaded = ParseCheckpoint(bytes);
  if (!loaded.ok()) {
    return absl::Status(loaded.status().code(),
                        absl::StrCat(path, ": ", loaded.status().message()));
  }
  return loaded;
}

absl::StatusOr<CheckpointInfo> VerifyCheckpoint(std::string_view bytes) {
  ASSIGN_OR_RETURN(ParsedHeader header, ParseHeader(bytes));
  RETURN_IF_ERROR(VerifyTensorTable(header.tensors, header.payload));
  return std::move(header.info);
}

absl::StatusOr<CheckpointInfo> ReadCheckpointInfo(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, common::ReadFile(path));
  auto header = ParseHeader(bytes);
  if (!header.ok()) {
    return absl::Status(header.status().code(),
                        absl::StrCat(path, ": ", header.status().message()));
  }
  return std::move(header->info);
}

}  // namespace segserve::model
