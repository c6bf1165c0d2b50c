#include "server/api/model_transfer_reactors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/api/converters.h"
#include "server/api/request_id.h"
#include "server/api/status_mapping.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"

namespace segserve::api {
namespace {

constexpr size_t kExportChunkBytes = 1 << 20;

bool IsLowerHexSha256(const std::string& text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// ImportStream: the header is checked, data chunks are appended to a temporary file under
// the incoming directory as they arrive (and hashed), and at the client's half-close the
// import runs on the control pool from that file. Every way out removes the file. Finish
// is called once: by Fail (on a gRPC reaction) or by the control-pool task, never both,
// so the pool task never meets a deleted reactor (OnDone follows Finish).
class ImportReactor final : public grpc::ServerReadReactor<v1::ImportModelChunk> {
 public:
  ImportReactor(grpc::CallbackServerContext* context, std::string incoming_dir,
                int64_t max_model_bytes, common::ThreadPool& pool, std::unique_ptr<StreamSlot> slot,
                const char* busy, ImportFn import)
      : context_(context),
        incoming_dir_(std::move(incoming_dir)),
        max_model_bytes_(max_model_bytes),
        pool_(pool),
        busy_(busy),
        slot_(std::move(slot)),
        import_(std::move(import)),
        request_id_(RequestId(*context)) {
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      EndOfStream();
      return;
    }
    absl::Status status;
    switch (chunk_.part_case()) {
      case v1::ImportModelChunk::kHeader:
        status = Header(chunk_.header());
        break;
      case v1::ImportModelChunk::kData:
        status = Data(chunk_.data());
        break;
      default:
        status = absl::InvalidArgumentError("part: every message must hold a header or data");
    }
    if (!status.ok()) {
      Fail(status);
      return;
    }
    StartRead(&chunk_);
  }

  void OnDone() override {
    RemoveFile();
    delete this;
  }

 private:
  absl::Status Header(const v1::ImportModelRequest& header) {
    if (have_header_) {
      return absl::InvalidArgumentError("header: sent twice; send it once, first, then data");
    }
    have_header_ = true;
    ASSIGN_OR_RETURN(request_.config, ConfigFromProto(header.config()));
    RETURN_IF_ERROR(registry::ValidateModelName(header.name(), "header.name"));
    if (!header.state_dict().empty()) {
      return absl::InvalidArgumentError(
          "header.state_dict: must be empty in ImportStream (send the file as data chunks)");
    }
    if (header.state_dict_bytes() < 0 || header.state_dict_bytes() > max_model_bytes_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header.state_dict_bytes: ", header.state_dict_bytes(), " is over the server's limit (",
          max_model_bytes_, " bytes, --max_model_bytes) or negative"));
    }
    if (!header.state_dict_sha256().empty() && !IsLowerHexSha256(header.state_dict_sha256())) {
      return absl::InvalidArgumentError(
          "header.state_dict_sha256: must be 64 lower-case hex characters (or empty)");
    }
    if (incoming_dir_.empty()) {
      return absl::FailedPreconditionError("ImportStream: this server has no incoming directory");
    }
    RETURN_IF_ERROR(registry::ValidateImportId(header.import_id(), "header.import_id"));
    request_.name = header.name();
    request_.strict = !header.non_strict();
    request_.import_id = header.import_id();
    load_ = header.load();
    declared_bytes_ = header.state_dict_bytes();
    declared_sha256_ = header.state_dict_sha256();
    std::string path = absl::StrCat(incoming_dir_, "/", kIncomingModelPrefix, "XXXXXX.part");
    fd_ = ::mkstemps(path.data(), 5);
    if (fd_ < 0) {
      return absl::InternalError(
          absl::StrCat("cannot create a file in ", incoming_dir_, ": ", strerror(errno)));
    }
    path_ = path;
    return absl::OkStatus();
  }

  absl::Status Data(const std::string& data) {
    if (!have_header_) {
      return absl::InvalidArgumentError(
          "header: the first message must be the header (an ImportModelRequest)");
    }
    const int64_t limit = declared_bytes_ > 0 ? declared_bytes_ : max_model_bytes_;
    if (received_ + static_cast<int64_t>(data.size()) > limit) {
      return absl::InvalidArgumentError(
          declared_bytes_ > 0 ? absl::StrCat("data: more bytes than header.state_dict_bytes (",
                                             declared_bytes_, ")")
                              : absl::StrCat("data: the file is over the server's limit (",
                                             max_model_bytes_, " bytes, --max_model_bytes)"));
    }
    size_t written = 0;
    while (written < data.size()) {
      const ssize_t n = ::write(fd_, data.data() + written, data.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int error = errno;
        return error == ENOSPC
                   ? absl::ResourceExhaustedError(absl::StrCat("no space left in ", incoming_dir_))
                   : absl::InternalError(absl::StrCat("writing ", path_, ": ", strerror(error)));
      }
      written += static_cast<size_t>(n);
    }
    hash_.Update(data);
    received_ += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }

  void EndOfStream() {
    if (context_->IsCancelled()) {
      Fail(absl::CancelledError("import stream cancelled before its end; nothing was imported"));
      return;
    }
    if (!have_header_) {
      Fail(absl::InvalidArgumentError(
          "header: the first message must be the header (an ImportModelRequest)"));
      return;
    }
    ::close(fd_);
    fd_ = -1;
    if (received_ == 0) {
      Fail(absl::InvalidArgumentError("data: no state-dict bytes were sent"));
      return;
    }
    if (declared_bytes_ > 0 && received_ != declared_bytes_) {
      Fail(absl::InvalidArgumentError(absl::StrCat("data: ", received_,
                                                   " bytes received, header.state_dict_bytes ",
                                                   "declared ", declared_bytes_)));
      return;
    }
    const std::string sha256 = common::DigestHex(hash_.Finish());
    if (!declared_sha256_.empty() && sha256 != declared_sha256_) {
      Fail(absl::InvalidArgumentError(absl::StrCat("header.state_dict_sha256: declared ",
                                                   declared_sha256_,
                                                   ", the bytes received hash to ", sha256)));
      return;
    }
    request_.state_dict_path = path_;
    const bool scheduled = pool_.TrySchedule([this] {
      const absl::Status status = import_(request_, load_);
      RemoveFile();
      Finish(ToGrpcStatus(status, request_id_));
    });
    if (!scheduled) Fail(absl::ResourceExhaustedError(busy_));
  }

  void Fail(const absl::Status& status) {
    RemoveFile();
    Finish(ToGrpcStatus(status, request_id_));
  }

  void RemoveFile() {
    std::lock_guard<std::mutex> lock(file_mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!path_.empty()) ::unlink(path_.c_str());
    path_.clear();
  }

  grpc::CallbackServerContext* context_;
  const std::string incoming_dir_;
  const int64_t max_model_bytes_;
  common::ThreadPool& pool_;
  const char* busy_;
  std::unique_ptr<StreamSlot> slot_;  // counts against the client's stream limit
  ImportFn import_;
  const std::string request_id_;
  v1::ImportModelChunk chunk_;
  registry::ImportRequest request_;
  bool have_header_ = false;
  bool load_ = false;
  int64_t declared_bytes_ = 0;
  std::string declared_sha256_;
  int64_t received_ = 0;
  common::Sha256 hash_;
  std::mutex file_mu_;  // RemoveFile: the pool task, then OnDone
  int fd_ = -1;
  std::string path_;
};

// Export: the pool task writes the state dict into the reactor (Start), which then streams
// the header and 1 MiB chunks from its gRPC reactions. Finish is called by the pool task
// (on an error) or by the write chain, never both.
class ExportReactor final : public grpc::ServerWriteReactor<v1::ExportModelChunk> {
 public:
  explicit ExportReactor(std::unique_ptr<StreamSlot> slot) : slot_(std::move(slot)) {}

  // From the pool task, once.
  void Start(ExportedFile file) {
    std::lock_guard<std::mutex> lock(mu_);
    bytes_ = std::move(file.bytes);
    *outgoing_.mutable_header() = std::move(file.header);
    StartWrite(&outgoing_);
  }
  void Fail(const grpc::Status& status) { Finish(status); }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "export stream went away"));
      return;
    }
    if (offset_ >= bytes_.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t n = std::min(kExportChunkBytes, bytes_.size() - offset_);
    outgoing_.set_data(bytes_.data() + offset_, n);
    offset_ += n;
    StartWrite(&outgoing_);
  }

  void OnDone() override { delete this; }

 private:
  std::unique_ptr<StreamSlot> slot_;
  std::mutex mu_;
  std::vector<char> bytes_;
  size_t offset_ = 0;
  v1::ExportModelChunk outgoing_;
};

}  // namespace

grpc::ServerReadReactor<v1::ImportModelChunk>* NewImportReactor(
    grpc::CallbackServerContext* context, std::string incoming_dir, int64_t max_model_bytes,
    common::ThreadPool& pool, std::unique_ptr<StreamSlot> slot, const char* busy, ImportFn import) {
  return new ImportReactor(context, std::move(incoming_dir), max_model_bytes, pool, std::move(slot),
                           busy, std::move(import));
}

grpc::ServerWriteReactor<v1::ExportModelChunk>* NewExportReactor(std::unique_ptr<StreamSlot> slot,
                                                                 common::ThreadPool& pool,
                                                                 const char* busy,
                                                                 const std::string& request_id,
                                                                 ExportFn produce) {
  auto* reactor = new ExportReactor(std::move(slot));
  const bool scheduled = pool.TrySchedule([reactor, produce = std::move(produce), request_id] {
    absl::StatusOr<ExportedFile> exported = produce();
    if (!exported.ok()) {
      reactor->Fail(ToGrpcStatus(exported.status(), request_id));
      return;
    }
    reactor->Start(std::move(*exported));
  });
  if (!scheduled) reactor->Fail(ToGrpcStatus(absl::ResourceExhaustedError(busy), request_id));
  return reactor;
}

}  // namespace segserve::api
