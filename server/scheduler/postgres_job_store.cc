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
  "cancel_requested"

constexpr Statement kInsert = {"jobs_insert",
                               "INSERT INTO jobs (" SEGSERVE_JOB_COLUMNS
                               ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)"};
constexpr Statement kUpdate = {
    "jobs_update",
    "UPDATE jobs SET state=$1, reason=$2, started_ms=$3, finished_ms=$4, result_json=$5, "
    "progress_json=$6, restarts=$7, last_completed_epoch=$8, cancel_requested=$9, "
    "priority=$10 WHERE id=$11"};
constexpr Statement kUpdateProgress = {"jobs_update_progress",
                                       "UPDATE jobs SET progress_json=$1 WHERE id=$2"};
constexpr Statement kUpdateEpoch = {"jobs_update_epoch",
                                    "UPDATE jobs SET last_completed_epoch=$1 WHERE id=$2"};
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

std::string Millis(TimePoint t) {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}
TimePoint FromMillis(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }
std::string Bool(bool b) { return b ? "true" : "false"; }

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
                         std::to_string(job.last_completed_epoch), Bool(job.cancel_requested)});
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
                                         const JobId& id) {
  ASSIGN_OR_RETURN(Result result, connection_->Exec(statement, params));
  if (result.affected() == 0) return absl::NotFoundError("job " + id + " not found");
  return absl::OkStatus();
}

absl::Status PostgresJobStore::Update(const Job& job) {
  absl::MutexLock lock(&mu_);
  return UpdateOne(kUpdate,
                   {JobStateName(job.state), job.reason, Millis(job.started), Millis(job.finished),
                    job.result_json, job.progress.ToJson(), std::to_string(job.restarts),
                    std::to_string(job.last_completed_epoch), Bool(job.cancel_requested),
                    std::to_string(job.priority), job.id},
                   job.id);
}

absl::Status PostgresJobStore::UpdateProgress(const JobId& id, const JobProgress& progress) {
  absl::MutexLock lock(&mu_);
  return UpdateOne(kUpdateProgress, {progress.ToJson(), id}, id);
}

absl::Status PostgresJobStore::UpdateLastCompletedEpoch(const JobId& id, int epoch) {
  absl::MutexLock lock(&mu_);
  return UpdateOne(kUpdateEpoch, {std::to_string(epoch), id}, id);
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
