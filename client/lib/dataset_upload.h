// File: client/lib/dataset_upload.h — Datasets.Upload from the client side: which files of
// a local directory make up a data set (native or nnU-Net layout), an upload id that stays
// the same across retries of the same files, and the chunked stream with progress.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/lib/client.h"
#include "segserve/v1/datasets.pb.h"

namespace segserve::client {

struct UploadFile {
  std::string path;  // relative to the directory, '/'-separated
  int64_t bytes = 0;
};

struct UploadPlan {
  std::string dir;
  std::string name;
  v1::DatasetLayout layout = v1::DATASET_LAYOUT_UNSPECIFIED;
  std::vector<UploadFile> files;  // dataset.json first, then sorted
  int64_t total_bytes = 0;
  // Hash of the name, layout and every file's path, size and modification time: a retry
  // of the same upload sends the same id (the server answers it with the published set),
  // a changed file gives a new one. Not a security property.
  std::string upload_id;
  // Files in the layout's folders that are not part of it (hidden files, other
  // extensions): not sent.
  std::vector<std::string> skipped;
};

// Lists `dir` for `layout` ("native", "nnunet", or "" to detect: dataset.json with
// imagesTr/ is nnU-Net, with images/ native). InvalidArgument when `dir` is neither.
absl::StatusOr<UploadPlan> PlanUpload(const std::string& dir, const std::string& name,
                                      const std::string& layout);

// Progress of an upload: bytes sent so far of the plan's total.
using UploadProgress = std::function<void(int64_t sent, int64_t total)>;

// Streams the plan's files in chunks of `chunk_bytes` (header first, files in plan order)
// and returns the published set. `progress` (may be empty) is called after each chunk.
absl::StatusOr<v1::DatasetInfo> UploadDataset(const Client& client, const UploadPlan& plan,
                                              int64_t chunk_bytes = 1 << 20,
                                              const UploadProgress& progress = nullptr);

}  // namespace segserve::client
