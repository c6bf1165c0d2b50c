#include "client/lib/dataset_upload.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "segserve/v1/datasets.grpc.pb.h"

namespace segserve::client {
namespace {
namespace fs = std::filesystem;

bool IsVolumeName(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  return absl::EndsWith(lower, ".nii") || absl::EndsWith(lower, ".nii.gz");
}

// 2-D images or NIfTI volumes; masks and labels are PNG or NIfTI.
bool IsImageName(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const char* ext : {".png", ".jpg", ".jpeg", ".tif", ".tiff"}) {
    if (absl::EndsWith(lower, ext)) return true;
  }
  return IsVolumeName(name);
}

bool IsMaskName(const std::string& name) {
  return absl::EndsWith(name, ".png") || IsVolumeName(name);
}

// FNV-1a over the bytes, from `basis`.
uint64_t Fnv1a(const std::string& bytes, uint64_t basis) {
  uint64_t h = basis;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

absl::StatusOr<UploadPlan> PlanUpload(const std::string& dir, const std::string& name,
                                      const std::string& layout) {
  std::error_code ec;
  const auto is_dir = [&](const char* sub) { return fs::is_directory(fs::path(dir) / sub, ec); };
  if (!fs::is_regular_file(fs::path(dir) / "dataset.json", ec)) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": no dataset.json (not a data set)"));
  }
  UploadPlan plan;
  plan.dir = dir;
  plan.name = name;
  if (layout == "nnunet" || (layout.empty() && is_dir("imagesTr"))) {
    plan.layout = v1::DATASET_LAYOUT_NNUNET;
  } else if (layout == "native" || (layout.empty() && is_dir("images"))) {
    plan.layout = v1::DATASET_LAYOUT_NATIVE;
  } else if (layout.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": neither images/ (native layout) nor imagesTr/ (nnU-Net layout)"));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--layout: expected native or nnunet, got '", layout, "'"));
  }
  const bool nnunet = plan.layout == v1::DATASET_LAYOUT_NNUNET;
  const std::string image_dir = nnunet ? "imagesTr" : "images";
  const std::string mask_dir = nnunet ? "labelsTr" : "masks";
  plan.files.push_back(
      {"dataset.json", static_cast<int64_t>(fs::file_size(fs::path(dir) / "dataset.json", ec))});
  // Fields separated by '\n', which no name or path of an upload may hold.
  std::string key = absl::StrCat(name, "\n", v1::DatasetLayout_Name(plan.layout), "\n");
  std::vector<UploadFile> files;
  for (const std::string& sub : {image_dir, mask_dir}) {
    if (!is_dir(sub.c_str())) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": missing folder ", sub, "/"));
    }
    for (const auto& entry : fs::directory_iterator(fs::path(dir) / sub, ec)) {
      const std::string file = entry.path().filename().string();
      const std::string rel = sub + "/" + file;
      const bool wanted = file[0] != '.' && entry.is_regular_file(ec) &&
                          (sub == image_dir ? IsImageName(file) : IsMaskName(file));
      if (!wanted) {
        plan.skipped.push_back(rel);
        continue;
      }
      files.push_back({rel, static_cast<int64_t>(entry.file_size(ec))});
    }
    if (ec) return absl::InvalidArgumentError(absl::StrCat(dir, "/", sub, ": ", ec.message()));
  }
  std::sort(files.begin(), files.end(),
            [](const UploadFile& a, const UploadFile& b) { return a.path < b.path; });
  plan.files.insert(plan.files.end(), files.begin(), files.end());
  for (const UploadFile& f : plan.files) {
    plan.total_bytes += f.bytes;
    const auto mtime = fs::last_write_time(fs::path(dir) / f.path, ec).time_since_epoch();
    absl::StrAppend(&key, f.path, "\n", f.bytes, "\n",
                    std::chrono::duration_cast<std::chrono::nanoseconds>(mtime).count(), "\n");
  }
  plan.upload_id = absl::StrFormat("%016x%016x", Fnv1a(key, 14695981039346656037ull),
                                   Fnv1a(key, 0x9e3779b97f4a7c15ull));
  std::sort(plan.skipped.begin(), plan.skipped.end());
  return plan;
}

absl::StatusOr<v1::DatasetInfo> UploadDataset(const Client& client, const UploadPlan& plan,
                                              int64_t chunk_bytes, const UploadProgress& progress) {
  chunk_bytes = std::max<int64_t>(chunk_bytes, 1);
  auto stub = v1::Datasets::NewStub(client.channel());
  auto context = client.NewStreamContext();
  v1::DatasetInfo info;
  std::unique_ptr<grpc::ClientWriter<v1::UploadDatasetChunk>> writer =
      stub->Upload(context.get(), &info);
  v1::UploadDatasetChunk message;
  auto* header = message.mutable_header();
  header->set_name(plan.name);
  header->set_layout(plan.layout);
  header->set_upload_id(plan.upload_id);
  header->set_total_bytes(plan.total_bytes);
  header->set_file_count(static_cast<int>(plan.files.size()));
  // A failed write means the server has finished the call (an error, or a set this upload
  // already published): Finish says which.
  bool open = writer->Write(message);
  int64_t sent = 0;
  std::string buffer(static_cast<size_t>(chunk_bytes), '\0');
  for (size_t i = 0; open && i < plan.files.size(); ++i) {
    const UploadFile& file = plan.files[i];
    std::ifstream in(fs::path(plan.dir) / file.path, std::ios::binary);
    if (!in) {
      context->TryCancel();
      writer->Finish();
      return absl::NotFoundError(absl::StrCat(plan.dir, "/", file.path, ": cannot open"));
    }
    int64_t offset = 0;
    do {
      in.read(buffer.data(), chunk_bytes);
      const int64_t n = in.gcount();
      if (in.bad() || (n == 0 && offset < file.bytes)) {
        context->TryCancel();
        writer->Finish();
        return absl::DataLossError(
            absl::StrCat(plan.dir, "/", file.path, ": read failed (did it change?)"));
      }
      message.Clear();
      auto* chunk = message.mutable_file();
      chunk->set_path(file.path);
      chunk->set_offset(offset);
      chunk->set_data(buffer.data(), static_cast<size_t>(n));
      offset += n;
      chunk->set_last(offset >= file.bytes || in.eof());
      open = writer->Write(message);
      sent += n;
      if (progress) progress(sent, plan.total_bytes);
      if (chunk->last()) break;
    } while (open);
  }
  if (open) writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return info;
}

}  // namespace segserve::client
