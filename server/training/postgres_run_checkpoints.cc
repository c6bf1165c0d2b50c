#include "server/training/postgres_run_checkpoints.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"

namespace segserve::training {
namespace {
namespace fs = std::filesystem;
using postgres::Statement;

const Statement kSelectFiles{
    "runs_select_files",
    "SELECT file, blob_oid::bigint, bytes, sha256 FROM run_files WHERE job_id = $1 ORDER BY file"};
const Statement kOldObject{"runs_old_object",
                           "SELECT blob_oid::bigint FROM run_files WHERE job_id = $1 AND file = $2"};
// The fence: the job still runs under this attempt. FOR SHARE holds off a claim (which
// updates the row) until this transaction ends.
const Statement kFence{"runs_fence",
                       "SELECT 1 FROM jobs WHERE id = $1 AND attempt = $2 AND state = 'RUNNING' "
                       "FOR SHARE"};
const Statement kUpsert{
    "runs_upsert",
    "INSERT INTO run_files (job_id, file, attempt, blob_oid, bytes, sha256, updated_ms) VALUES "
    "($1, $2, $3, $4::oid, $5, $6, $7) ON CONFLICT (job_id, file) DO UPDATE SET attempt = "
    "EXCLUDED.attempt, blob_oid = EXCLUDED.blob_oid, bytes = EXCLUDED.bytes, sha256 = "
    "EXCLUDED.sha256, updated_ms = EXCLUDED.updated_ms"};
// lo_unlink only when the object exists: a missing one must not abort the transaction.
const Statement kUnlink{"runs_unlink",
                        "SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = $1::oid"};
const Statement kDeleteFiles{"runs_delete_files",
                             "DELETE FROM run_files WHERE job_id = $1 RETURNING blob_oid::bigint"};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RunCheckpoints>> PostgresRunCheckpoints::Open(
    postgres::ConnectOptions database) {
  ASSIGN_OR_RETURN(std::unique_ptr<postgres::Connection> db,
                   postgres::Connection::Open(std::move(database)));
  RETURN_IF_ERROR(postgres::ApplyMigrations(*db, kComponent, Migrations()));
  std::unique_ptr<PostgresRunCheckpoints> store(new PostgresRunCheckpoints(std::move(db)));
  LOG(INFO) << store->Describe();
  return std::unique_ptr<RunCheckpoints>(std::move(store));
}

PostgresRunCheckpoints::PostgresRunCheckpoints(std::unique_ptr<postgres::Connection> db)
    : description_(absl::StrCat("run checkpoints in large objects of ", db->description())),
      db_(std::move(db)) {}

std::string PostgresRunCheckpoints::Describe() const { return description_; }

absl::Status PostgresRunCheckpoints::InTransaction(
    const std::function<absl::Status(postgres::Connection& db)>& body) {
  RETURN_IF_ERROR(db_->Begin());
  absl::Status status = body(*db_);
  if (status.ok()) status = db_->Commit();
  if (!status.ok()) db_->Rollback();
  return status;
}

absl::Status PostgresRunCheckpoints::Save(const std::string& job_id, int attempt,
                                          const std::string& run_dir,
                                          const std::vector<std::string>& files) {
  // One file in memory at a time (a checkpoint is held once, and written to its object in
  // 1 MiB calls).
  absl::MutexLock lock(&db_mu_);
  return InTransaction([&](postgres::Connection& db) -> absl::Status {
    std::vector<uint32_t> replaced;
    for (const std::string& file : files) {
      ASSIGN_OR_RETURN(std::string bytes, common::ReadFile(run_dir + "/" + file));
      ASSIGN_OR_RETURN(uint32_t oid, db.CreateLargeObject());
      RETURN_IF_ERROR(db.WriteLargeObject(oid, bytes));
      ASSIGN_OR_RETURN(postgres::Result old, db.Exec(kOldObject, {job_id, file}));
      if (old.rows() > 0) replaced.push_back(static_cast<uint32_t>(old.Int(0, 0)));
      RETURN_IF_ERROR(db.Exec(kUpsert, {job_id, file, absl::StrCat(attempt), absl::StrCat(oid),
                                          absl::StrCat(bytes.size()), common::Sha256Hex(bytes),
                                          absl::StrCat(NowMs())})
                          .status());
    }
    for (const uint32_t oid : replaced) {
      RETURN_IF_ERROR(db.Exec(kUnlink, {absl::StrCat(oid)}).status());
    }
    // Last, so the row lock is held only for the commit.
    ASSIGN_OR_RETURN(postgres::Result fence, db.Exec(kFence, {job_id, absl::StrCat(attempt)}));
    if (fence.rows() == 0) {
      return absl::AbortedError(absl::StrCat("job ", job_id, " no longer runs as attempt ",
                                             attempt, "; its checkpoints were not saved"));
    }
    return absl::OkStatus();
  });
}

absl::Status PostgresRunCheckpoints::Restore(const std::string& job_id, const std::string& run_dir) {
  absl::MutexLock lock(&db_mu_);
  return InTransaction([&](postgres::Connection& db) -> absl::Status {
    ASSIGN_OR_RETURN(postgres::Result rows, db.Exec(kSelectFiles, {job_id}));
    for (int r = 0; r < rows.rows(); ++r) {
      const std::string file = rows.Text(r, 0);
      const auto oid = static_cast<uint32_t>(rows.Int(r, 1));
      const int64_t expected_bytes = rows.Int(r, 2);
      const std::string expected_sha = rows.Text(r, 3);
      const std::string path = run_dir + "/" + file;
      // This disk has it already.
      if (common::FileSha256Hex(path).value_or("") == expected_sha) continue;
      // Named as the runner's interrupted writes are, so a kill here leaves nothing it
      // does not remove.
      const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid(), ".restore");
      std::FILE* out = std::fopen(tmp.c_str(), "wb");
      if (out == nullptr) return absl::InternalError(absl::StrCat("cannot create ", tmp));
      common::Sha256 sha;
      int64_t bytes = 0;
      absl::Status read = db.ReadLargeObject(oid, [&](std::string_view chunk) -> absl::Status {
        sha.Update(chunk);
        bytes += static_cast<int64_t>(chunk.size());
        if (std::fwrite(chunk.data(), 1, chunk.size(), out) != chunk.size()) {
          return absl::ResourceExhaustedError(absl::StrCat("cannot write ", tmp));
        }
        return absl::OkStatus();
      });
      const bool closed = std::fflush(out) == 0 && ::fsync(::fileno(out)) == 0;
      std::fclose(out);
      std::error_code ec;
      if (read.ok() && !closed) read = absl::ResourceExhaustedError(absl::StrCat("cannot write ", tmp));
      const std::string digest = read.ok() ? common::DigestHex(sha.Finish()) : "";
      if (read.ok() && (digest != expected_sha || bytes != expected_bytes)) {
        read = absl::DataLossError(absl::StrCat("runs/", job_id, "/", file, ": its large object ",
                                                oid, " has SHA-256 ", digest, " (", bytes,
                                                " bytes), saved ", expected_sha, " (",
                                                expected_bytes, " bytes)"));
      }
      if (!read.ok()) {
        fs::remove(tmp, ec);
        return read;
      }
      fs::rename(tmp, path, ec);
      if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
      LOG(INFO) << "training " << job_id << ": restored " << file << " (" << bytes
                << " bytes) from the database";
    }
    return absl::OkStatus();
  });
}

absl::Status PostgresRunCheckpoints::Remove(const std::string& job_id) {
  absl::MutexLock lock(&db_mu_);
  return InTransaction([&](postgres::Connection& db) -> absl::Status {
    ASSIGN_OR_RETURN(postgres::Result removed, db.Exec(kDeleteFiles, {job_id}));
    for (int r = 0; r < removed.rows(); ++r) {
      RETURN_IF_ERROR(db.Exec(kUnlink, {removed.Text(r, 0)}).status());
    }
    return absl::OkStatus();
  });
}

}  // namespace segserve::training
