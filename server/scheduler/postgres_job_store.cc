#include "server/scheduler/postgres_job_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"

namespace segserve::scheduler {
namespace {

using postgres::Params;
using postgres::Result;
using postgres::Statement;

#define SEGSERVE_JOB_COLUMNS                                                            \
  "id, kind, state, reason, priority, parent_id, created_ms, started_ms, finished_ms, " \
  "spec_json, result_json, progress_json, restarts, last_completed_epoch, "             \
  "cancel_requested, attempt, owner"

constexpr Statement kInsert = {"jobs_insert",
                               "INSERT INTO jobs (" SEGSERVE_JOB_COLUMNS
                               ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)"};
// Fences as NULL-able parameters: one prepared statement for every fence shape.
#define SEGSERVE_FENCE(attempt, state)                                              \
  " AND ($" #attempt "::int IS NULL OR (attempt=$" #attempt "::int AND state='RUNNING'))" \
  " AND ($" #state "::text IS NULL OR state=$" #state "::text)"
// The database's clock in Unix milliseconds.
#define SEGSERVE_NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"

constexpr Statement kUpdate = {
    "jobs_update",
    "UPDATE jobs SET state=$1, reason=$2, started_ms=$3, finished_ms=$4, result_json=$5, "
    "progress_json=$6, restarts=$7, last_completed_epoch=$8, "
    "cancel_requested=(cancel_requested OR $9::boolean), "
    "priority=$10, owner=$11 WHERE id=$12" SEGSERVE_FENCE(13, 14)};
constexpr Statement kUpdateProgress = {
    "jobs_update_progress",
    "UPDATE jobs SET progress_json=$1 WHERE id=$2" SEGSERVE_FENCE(3, 4)};
constexpr Statement kUpdateEpoch = {
    "jobs_update_epoch",
    "UPDATE jobs SET last_completed_epoch=$1 WHERE id=$2" SEGSERVE_FENCE(3, 4)};
constexpr Statement kFenceState = {"jobs_fence_state",
                                   "SELECT state, attempt FROM jobs WHERE id=$1"};
constexpr Statement kRequestCancel = {"jobs_request_cancel",
                                      "UPDATE jobs SET cancel_requested=TRUE WHERE id=$1"};
constexpr Statement kClaim = {
    "jobs_claim",
    "UPDATE jobs SET state='RUNNING', attempt=attempt+1, owner=$1, "
    "lease_expires_ms=" SEGSERVE_NOW_MS " + $2::bigint, "
    "started_ms=CASE WHEN started_ms=0 THEN $3::bigint ELSE started_ms END, reason='' "
    "WHERE id=(SELECT id FROM jobs WHERE state='QUEUED' AND kind NOT IN ('SWEEP','EXPERIMENT')"
    " ORDER BY priority DESC, seq ASC LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "RETURNING " SEGSERVE_JOB_COLUMNS};
constexpr Statement kRenewLease = {
    "jobs_renew_lease",
    "UPDATE jobs SET lease_expires_ms=" SEGSERVE_NOW_MS " + $3::bigint "
    "WHERE id=$1 AND attempt=$2::int AND state='RUNNING' RETURNING cancel_requested"};
constexpr Statement kRequeueExpired = {
    "jobs_requeue_expired",
    "UPDATE jobs SET "
    "state=CASE WHEN cancel_requested THEN 'CANCELLED' ELSE 'QUEUED' END, "
    "restarts=restarts + CASE WHEN cancel_requested THEN 0 ELSE 1 END, "
    "finished_ms=CASE WHEN cancel_requested THEN $1::bigint ELSE finished_ms END, "
    "reason=CASE WHEN cancel_requested THEN "
    "'cancelled by request (its worker ' || owner || ' stopped renewing its lease)' "
    "ELSE 'lease of worker ' || owner || ' expired; resumes after epoch ' || "
    "last_completed_epoch END, "
    "owner='' WHERE id IN (SELECT id FROM jobs WHERE state='RUNNING' AND "
    "kind NOT IN ('SWEEP','EXPERIMENT') AND lease_expires_ms < " SEGSERVE_NOW_MS
    " FOR UPDATE SKIP LOCKED) RETURNING " SEGSERVE_JOB_COLUMNS};
constexpr Statement kGet = {"jobs_get", "SELECT " SEGSERVE_JOB_COLUMNS " FROM jobs WHERE id=$1"};
constexpr Statement kChildIds = {"jobs_child_ids",
                                 "SELECT id FROM jobs WHERE parent_id=$1 ORDER BY seq"};
// One statement for every filter shape: a NULL parameter means "no such filter".
constexpr Statement kList = {
    "jobs_list", "SELECT " SEGSERVE_JOB_COLUMNS
                 " FROM jobs WHERE ($1::text[] IS NULL OR state = ANY($1::text[]))"
                 " AND ($2::text IS NULL OR kind = $2::text)"
                 " AND ($3::text IS NULL OR parent_id = $3::text)"
                 " AND ($4::bigint IS NULL OR (finished_ms > 0 AND finished_ms <= $4::bigint))"
                 " ORDER BY seq DESC LIMIT $5"};
constexpr Statement kNextRunnable = {
    "jobs_next_runnable", "SELECT " SEGSERVE_JOB_COLUMNS
                          " FROM jobs WHERE state='QUEUED' AND kind NOT IN ('SWEEP','EXPERIMENT')"
                          " ORDER BY priority DESC, seq ASC LIMIT 1"};
constexpr Statement kChildren = {
    "jobs_children", "SELECT " SEGSERVE_JOB_COLUMNS " FROM jobs WHERE parent_id=$1 ORDER BY seq"};
constexpr Statement kCountByState = {"jobs_count_by_state",
                                     "SELECT state, COUNT(*) FROM jobs GROUP BY state"};
constexpr Statement kCountRunnable = {
    "jobs_count_runnable",
    "SELECT COUNT(*) FROM jobs WHERE state='QUEUED' AND kind NOT IN ('SWEEP','EXPERIMENT')"};
constexpr Statement kDelete = {"jobs_delete", "DELETE FROM jobs WHERE id = ANY($1::text[])"};

#undef SEGSERVE_JOB_COLUMNS
#undef SEGSERVE_FENCE
#undef SEGSERVE_NOW_MS

std::string Millis(TimePoint t) {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}
TimePoint FromMillis(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }
std::string Bool(bool b) { return b ? "true" : "false"; }

// The fence's two parameters (NULL = no condition).
void AppendFence(Params& params, const Fence& fence) {
  params.push_back(fence.attempt > 0 ? std::optional<std::string>(std::to_string(fence.attempt))
                                     : std::nullopt);
  params.push_back(fence.state ? std::optional<std::string>(JobStateName(*fence.state))
                               : std::nullopt);
}

// A text[] literal: every element double-quoted, with " and \ escaped.
std::string TextArray(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresJobStore>> PostgresJobStore::Open(
    postgres::ConnectOptions options) {
  if (options.what == "database") options.what = "job database";
  ASSIGN_OR_RETURN(std::unique_ptr<postgres::Connection> connection,
                   postgres::Connection::Open(std::move(options)));
  RETURN_IF_ERROR(postgres::ApplyMigrations(*connection, kComponent, Migrations()));
  LOG(INFO) << connection->description() << ": schema '" << kComponent << "' at version "
            << Migrations().back().version;
  return std::unique_ptr<PostgresJobStore>(new PostgresJobStore(std::move(connection)));
}

absl::Status PostgresJobStore::Insert(const std::vector<Job>& jobs) {
  absl::MutexLock lock(&mu_);
  postgres::Connection& c = *connection_;
  RETURN_IF_ERROR(c.Begin());
  for (const Job& job : jobs) {
    absl::StatusOr<Result> inserted =
        c.Exec(kInsert, {job.id, JobKindName(job.kind), JobStateName(job.state), job.reason,
                         std::to_string(job.priority), job.parent_id, Millis(job.created),
                         Millis(job.started), Millis(job.finished), job.spec_json, job.result_json,
                         job.progress.ToJson(), std::to_string(job.restarts),
                         std::to_string(job.last_completed_epoch), Bool(job.cancel_requested),
                         std::to_string(job.attempt), job.owner});
    if (!inserted.ok()) {
      c.Rollback();
      if (inserted.status().code() == absl::StatusCode::kAlreadyExists) {
        return absl::AlreadyExistsError("job " + job.id + " already exists");
      }
      return inserted.status();
    }
  }
  absl::Status committed = c.Commit();
  if (!committed.ok()) c.Rollback();
  return committed;
}

absl::Status PostgresJobStore::UpdateOne(const Statement& statement, const Params& params,
                                         const JobId& id, const Fence& fence) {
  ASSIGN_OR_RETURN(Result result, connection_->Exec(statement, params));
  if (result.affected() > 0) return absl::OkStatus();
  return NoRowUpdated(id, fence);
}

absl::Status PostgresJobStore::NoRowUpdated(const JobId& id, const Fence& fence) {
  ASSIGN_OR_RETURN(Result row, connection_->Exec(kFenceState, {id}));
  if (row.rows() == 0) return absl::NotFoundError("job " + id + " not found");
  return absl::AbortedError(absl::StrCat(
      "job ", id, " changed under this write: it is ", row.Text(0, 0), " attempt ",
      row.Int(0, 1), ", the write expected ",
      fence.attempt > 0 ? absl::StrCat("RUNNING attempt ", fence.attempt)
                        : std::string(fence.state ? JobStateName(*fence.state) : "?"),
      " (the run lost its lease)"));
}

absl::Status PostgresJobStore::Update(const Job& job, const Fence& fence) {
  absl::MutexLock lock(&mu_);
  Params params = {JobStateName(job.state),   job.reason,
                   Millis(job.started),       Millis(job.finished),
                   job.result_json,           job.progress.ToJson(),
                   std::to_string(job.restarts), std::to_string(job.last_completed_epoch),
                   Bool(job.cancel_requested), std::to_string(job.priority),
                   job.owner,                 job.id};
  AppendFence(params, fence);
  return UpdateOne(kUpdate, params, job.id, fence);
}

absl::Status PostgresJobStore::UpdateProgress(const JobId& id, const JobProgress& progress,
                                              int attempt) {
  absl::MutexLock lock(&mu_);
  const Fence fence{attempt, std::nullopt};
  Params params = {progress.ToJson(), id};
  AppendFence(params, fence);
  return UpdateOne(kUpdateProgress, params, id, fence);
}

absl::Status PostgresJobStore::UpdateLastCompletedEpoch(const JobId& id, int epoch,
                                                        int attempt) {
  absl::MutexLock lock(&mu_);
  const Fence fence{attempt, std::nullopt};
  Params params = {std::to_string(epoch), id};
  AppendFence(params, fence);
  return UpdateOne(kUpdateEpoch, params, id, fence);
}

absl::Status PostgresJobStore::RequestCancel(const JobId& id) {
  absl::MutexLock lock(&mu_);
  return UpdateOne(kRequestCancel, {id}, id, Fence{});
}

absl::StatusOr<std::optional<Job>> PostgresJobStore::Claim(const std::string& owner,
                                                           std::chrono::milliseconds lease,
                                                           TimePoint now) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<Job> jobs,
                   QueryJobs(kClaim, {owner, std::to_string(lease.count()), Millis(now)}));
  if (jobs.empty()) return std::optional<Job>();
  return std::optional<Job>(std::move(jobs[0]));
}

absl::StatusOr<bool> PostgresJobStore::RenewLease(const JobId& id, int attempt,
                                                  std::chrono::milliseconds lease) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Result result, connection_->Exec(kRenewLease, {id, std::to_string(attempt),
                                                                  std::to_string(lease.count())}));
  if (result.rows() > 0) return result.Bool(0, 0);
  return NoRowUpdated(id, Fence{attempt, std::nullopt});
}

absl::StatusOr<std::vector<Job>> PostgresJobStore::RequeueExpired(TimePoint now) {
  absl::MutexLock lock(&mu_);
  return QueryJobs(kRequeueExpired, {Millis(now)});
}

absl::StatusOr<std::vector<Job>> PostgresJobStore::QueryJobs(const Statement& statement,
                                                             const Params& params) {
  ASSIGN_OR_RETURN(Result result, connection_->Exec(statement, params));
  std::vector<Job> jobs;
  jobs.reserve(result.rows());
  for (int r = 0; r < result.rows(); ++r) {
    Job job;
    job.id = result.Text(r, 0);
    ASSIGN_OR_RETURN(job.kind, ParseJobKind(result.Text(r, 1)));
    ASSIGN_OR_RETURN(job.state, ParseJobState(result.Text(r, 2)));
    job.reason = result.Text(r, 3);
    job.priority = static_cast<int>(result.Int(r, 4));
    job.parent_id = result.Text(r, 5);
    job.created = FromMillis(result.Int(r, 6));
    job.started = FromMillis(result.Int(r, 7));
    job.finished = FromMillis(result.Int(r, 8));
    job.spec_json = result.Text(r, 9);
    job.result_json = result.Text(r, 10);
    ASSIGN_OR_RETURN(job.progress, JobProgress::FromJson(result.Text(r, 11)));
    job.restarts = static_cast<int>(result.Int(r, 12));
    job.last_completed_epoch = static_cast<int>(result.Int(r, 13));
    job.cancel_requested = result.Bool(r, 14);
    job.attempt = static_cast<int>(result.Int(r, 15));
    job.owner = result.Text(r, 16);
    jobs.push_back(std::move(job));
  }
  return jobs;
}

absl::Status PostgresJobStore::FillChildIds(Job& job) {
  if (!IsParentKind(job.kind)) return absl::OkStatus();
  ASSIGN_OR_RETURN(Result result, connection_->Exec(kChildIds, {job.id}));
  job.child_ids.clear();
  for (int r = 0; r < result.rows(); ++r) job.child_ids.push_back(result.Text(r, 0));
  return absl::OkStatus();
}

absl::StatusOr<Job> PostgresJobStore::Get(const JobId& id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<Job> jobs, QueryJobs(kGet, {id}));
  if (jobs.empty()) return absl::NotFoundError("job '" + id + "' not found");
  RETURN_IF_ERROR(FillChildIds(jobs[0]));
  return std::move(jobs[0]);
}

absl::StatusOr<std::vector<Job>> PostgresJobStore::List(const JobFilter& filter) {
  absl::MutexLock lock(&mu_);
  Params params(5);
  if (!filter.states.empty()) {
    std::vector<std::string> states;
    for (JobState s : filter.states) states.push_back(JobStateName(s));
    params[0] = TextArray(states);
  }
  if (filter.kind) params[1] = JobKindName(*filter.kind);
  if (filter.parent_id) params[2] = *filter.parent_id;
  if (filter.finished_before) params[3] = Millis(*filter.finished_before);
  params[4] = std::to_string(std::clamp(filter.limit, 1, 1000));
  ASSIGN_OR_RETURN(std::vector<Job> jobs, QueryJobs(kList, params));
  for (Job& job : jobs) RETURN_IF_ERROR(FillChildIds(job));
  return jobs;
}

absl::StatusOr<std::optional<Job>> PostgresJobStore::NextRunnable() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<Job> jobs, QueryJobs(kNextRunnable, {}));
  if (jobs.empty()) return std::optional<Job>();
  return std::optional<Job>(std::move(jobs[0]));
}

absl::StatusOr<std::vector<Job>> PostgresJobStore::Children(const JobId& parent_id) {
  absl::MutexLock lock(&mu_);
  return QueryJobs(kChildren, {parent_id});
}

absl::StatusOr<std::map<JobState, int64_t>> PostgresJobStore::CountByState() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Result result, connection_->Exec(kCountByState));
  std::map<JobState, int64_t> counts;
  for (JobState s : kAllJobStates) counts[s] = 0;
  for (int r = 0; r < result.rows(); ++r) {
    ASSIGN_OR_RETURN(JobState state, ParseJobState(result.Text(r, 0)));
    counts[state] = result.Int(r, 1);
  }
  return counts;
}

absl::StatusOr<int64_t> PostgresJobStore::CountRunnableQueued() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Result result, connection_->Exec(kCountRunnable));
  return result.Int(0, 0);
}

absl::Status PostgresJobStore::Delete(const std::vector<JobId>& ids) {
  absl::MutexLock lock(&mu_);
  if (ids.empty()) return absl::OkStatus();
  // One statement: atomic on its own, as SQLite's explicit transaction is.
  return connection_->Exec(kDelete, {TextArray(ids)}).status();
}

}  // namespace segserve::scheduler
