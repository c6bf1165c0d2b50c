#include "server/training/optimizer_state.h"

#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <string_view>

#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"

namespace segserve::training {

absl::Status SaveOptimizer(const std::string& path, torch::optim::Adam& optimizer, int epoch) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  archive.write("segserve_epoch", torch::tensor(static_cast<int64_t>(epoch)));
  // Streamed into the file: Adam's state is twice the weights, and a copy in memory (then a
  // second one in a string) cost more than the write itself.
  ASSIGN_OR_RETURN(std::unique_ptr<common::AtomicFileWriter> file,
                   common::AtomicFileWriter::Create(path));
  absl::Status written;
  try {
    archive.save_to([&](const void* data, size_t n) -> size_t {
      if (written.ok()) written = file->Append(std::string_view(static_cast<const char*>(data), n));
      return written.ok() ? n : 0;
    });
  } catch (const c10::Error&) {
    // A short count makes LibTorch's writer throw; `written` says why (a full disk is
    // RESOURCE_EXHAUSTED, not INTERNAL).
    if (!written.ok()) return written;
    throw;
  }
  RETURN_IF_ERROR(written);
  return file->Commit();
}

bool LoadOptimizer(const std::string& path, torch::optim::Adam& optimizer, int epoch) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return false;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::Tensor saved_epoch;
    if (!archive.try_read("segserve_epoch", saved_epoch) || saved_epoch.item<int64_t>() != epoch) {
      return false;
    }
    optimizer.load(archive);
    return true;
  } catch (const std::exception& e) {
    LOG(WARNING) << "training: cannot load optimizer state " << path << ": " << e.what();
    return false;
  }
}

}  // namespace segserve::training
