// File: client/lib/model_transfer.h — weights in and out of the server without a message-size
// ceiling: Models.ImportStream from a file (read and sent in chunks, never whole in memory)
// and Models.Export into a file (written as it arrives, checked against the header's size and
// SHA-256, renamed into place only when complete).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "client/lib/client.h"
#include "segserve/v1/models.pb.h"

namespace segserve::client {

// Called after each chunk: bytes done so far, and the total.
using TransferProgress = std::function<void(int64_t done, int64_t total)>;

inline constexpr size_t kTransferChunkBytes = 1 << 20;

inline constexpr int kImportAttempts = 3;

// Streams the file at `path` with `header` (its state_dict must be empty; its size and
// SHA-256 are filled in here, so the server checks both). The file is read twice (hash,
// then send), a chunk at a time. Without an import_id in `header` one is drawn, and a
// call that fails UNAVAILABLE is sent again (kImportAttempts in all, 1 s then 2 s apart):
// the id makes the retry answer with the version an earlier attempt registered.
absl::StatusOr<v1::ModelInfo> ImportModelFile(const Client& client, v1::ImportModelRequest header,
                                              const std::string& path,
                                              const TransferProgress& progress = nullptr);

// Writes the export of `request` to `out_path` (through "<out_path>.part", removed on any
// error). Returns the stream's header.
absl::StatusOr<v1::ExportModelHeader> ExportModelToFile(const Client& client,
                                                        const v1::ExportModelRequest& request,
                                                        const std::string& out_path,
                                                        const TransferProgress& progress = nullptr);

}  // namespace segserve::client
