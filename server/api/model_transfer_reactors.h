// File: server/api/model_transfer_reactors.h — the streaming halves of Models.ImportStream
// and Models.Export. ImportStream: the header is checked, data chunks are appended to a
// temporary file in the incoming directory as they arrive (and hashed), and at the
// client's half-close `import` runs on the pool from that file; every way out removes the
// file. Export: `produce` runs on the pool and the reactor streams its header, then the
// bytes in 1 MiB chunks. ModelsService owns the policy (auth, refs, what is imported).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/support/server_callback.h"
#include "segserve/v1/models.pb.h"
#include "server/api/access_control.h"
#include "server/common/thread_pool.h"
#include "server/registry/importer.h"

namespace segserve::api {

// ImportStream's temporary files are named model-XXXXXX.part in the incoming directory.
inline constexpr const char* kIncomingModelPrefix = "model-";

// Imports the complete file (request.state_dict_path) and fills the call's response.
using ImportFn = std::function<absl::Status(const registry::ImportRequest&, bool load)>;

struct ExportedFile {
  v1::ExportModelHeader header;
  std::vector<char> bytes;
};
using ExportFn = std::function<absl::StatusOr<ExportedFile>()>;

// `busy`: the RESOURCE_EXHAUSTED message when the pool's queue is full.
grpc::ServerReadReactor<v1::ImportModelChunk>* NewImportReactor(
    grpc::CallbackServerContext* context, std::string incoming_dir, int64_t max_model_bytes,
    common::ThreadPool& pool, std::unique_ptr<StreamSlot> slot, const char* busy, ImportFn import);

grpc::ServerWriteReactor<v1::ExportModelChunk>* NewExportReactor(std::unique_ptr<StreamSlot> slot,
                                                                 common::ThreadPool& pool,
                                                                 const char* busy,
                                                                 const std::string& request_id,
                                                                 ExportFn produce);

}  // namespace segserve::api
