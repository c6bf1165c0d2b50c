#include "client/lib/model_transfer.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "segserve/v1/models.grpc.pb.h"
#include "server/common/sha256.h"

namespace segserve::client {
namespace {

// SHA-256 (hex) and size of a file, read a chunk at a time.
absl::StatusOr<std::pair<std::string, int64_t>> HashFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  common::Sha256 hash;
  std::string buffer(kTransferChunkBytes, '\0');
  int64_t size = 0;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0) break;
    hash.Update(std::string_view(buffer.data(), static_cast<size_t>(n)));
    size += n;
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return std::make_pair(common::DigestHex(hash.Finish()), size);
}

}  // namespace

namespace {

// "import-" and 32 random hex characters.
std::string RandomImportId() {
  std::random_device device;
  std::string id = "import-";
  for (int i = 0; i < 4; ++i) absl::StrAppend(&id, absl::Hex(device(), absl::kZeroPad8));
  return id;
}

// One ImportStream call: the header, then the file in chunks.
grpc::Status StreamOnce(const Client& client, const v1::ImportModelRequest& header,
                        const std::string& path, int64_t size, const TransferProgress& progress,
                        v1::ModelInfo* info) {
  auto stub = v1::Models::NewStub(client.channel());
  auto context = client.NewContext();
  auto writer = stub->ImportStream(context.get(), info);
  v1::ImportModelChunk chunk;
  *chunk.mutable_header() = header;
  bool open = writer->Write(chunk);
  std::ifstream in(path, std::ios::binary);
  if (!in) open = false;
  int64_t sent = 0;
  std::string buffer(kTransferChunkBytes, '\0');
  while (open && sent < size) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0) break;  // the file shrank: the server answers with the size mismatch
    chunk.set_data(buffer.data(), static_cast<size_t>(n));
    open = writer->Write(chunk);  // false: the server finished early; Finish says why
    if (open) {
      sent += n;
      if (progress) progress(sent, size);
    }
  }
  writer->WritesDone();
  return writer->Finish();
}

}  // namespace

absl::StatusOr<v1::ModelInfo> ImportModelFile(const Client& client, v1::ImportModelRequest header,
                                              const std::string& path,
                                              const TransferProgress& progress) {
  auto hashed = HashFile(path);
  if (!hashed.ok()) return hashed.status();
  const auto& [sha256, size] = *hashed;
  if (size == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": empty file"));
  header.clear_state_dict();
  header.set_state_dict_bytes(size);
  header.set_state_dict_sha256(sha256);
  if (header.import_id().empty()) header.set_import_id(RandomImportId());

  // With the import id a retry registers nothing twice: an attempt whose reply was lost
  // (the server or the connection went away) answers with the version it registered.
  grpc::Status status;
  v1::ModelInfo info;
  for (int attempt = 1; attempt <= kImportAttempts; ++attempt) {
    status = StreamOnce(client, header, path, size, progress, &info);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || attempt == kImportAttempts) break;
    std::this_thread::sleep_for(std::chrono::seconds(attempt));
  }
  if (!status.ok()) return FromGrpcStatus(status);
  return info;
}

absl::StatusOr<v1::ExportModelHeader> ExportModelToFile(const Client& client,
                                                        const v1::ExportModelRequest& request,
                                                        const std::string& out_path,
                                                        const TransferProgress& progress) {
  const std::string part = out_path + ".part";
  auto stub = v1::Models::NewStub(client.channel());
  auto context = client.NewContext();
  auto reader = stub->Export(context.get(), request);
  v1::ExportModelChunk chunk;
  v1::ExportModelHeader header;
  bool have_header = false;
  int64_t received = 0;
  common::Sha256 hash;
  std::ofstream out;
  auto fail = [&](absl::Status status) {
    out.close();
    std::remove(part.c_str());
    context->TryCancel();
    reader->Finish();  // CANCELLED: ours
    return status;
  };
  while (reader->Read(&chunk)) {
    if (chunk.has_header()) {
      if (have_header) return fail(absl::DataLossError("export: a second header"));
      header = chunk.header();
      have_header = true;
      out.open(part, std::ios::binary | std::ios::trunc);
      if (!out) return fail(absl::PermissionDeniedError(absl::StrCat(part, ": cannot write")));
      continue;
    }
    if (!have_header) return fail(absl::DataLossError("export: data before the header"));
    const std::string& data = chunk.data();
    received += static_cast<int64_t>(data.size());
    if (received > header.size_bytes()) {
      return fail(absl::DataLossError("export: more bytes than the header announced"));
    }
    hash.Update(data);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out) return fail(absl::ResourceExhaustedError(absl::StrCat(part, ": write failed")));
    if (progress) progress(received, header.size_bytes());
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    out.close();
    std::remove(part.c_str());
    return FromGrpcStatus(status);
  }
  if (!have_header) return fail(absl::DataLossError("export: the server sent no header"));
  out.close();
  if (!out) return fail(absl::ResourceExhaustedError(absl::StrCat(part, ": write failed")));
  if (received != header.size_bytes()) {
    return fail(absl::DataLossError(absl::StrCat("export: ", received, " bytes received, ",
                                                 header.size_bytes(), " announced")));
  }
  const std::string sha256 = common::DigestHex(hash.Finish());
  if (sha256 != header.sha256()) {
    return fail(absl::DataLossError(absl::StrCat("export: SHA-256 ", sha256,
                                                 " does not match the announced ",
                                                 header.sha256())));
  }
  std::error_code ec;
  std::filesystem::rename(part, out_path, ec);
  if (ec) return fail(absl::InternalError(absl::StrCat("rename to ", out_path, ": ", ec.message())));
  return header;
}

}  // namespace segserve::client
