#include "tests/scheduler/test_util.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>

#include "nlohmann/json.hpp"
#include "prometheus/metric_family.h"
#include "server/scheduler/postgres_job_store.h"
#include "server/scheduler/sqlite_job_store.h"
#include "tests/testing/postgres_server.h"

namespace segserve::scheduler::testing {

TempDir::TempDir() {
  char tmpl[] = "/tmp/segserve_scheduler_test_XXXXXX";
  path_ = mkdtemp(tmpl);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::kSqlite ? "sqlite" : "postgres");
}

StoreFactory::StoreFactory(Backend backend)
    : backend_(backend), database_(absl::UnknownError("not PostgreSQL")) {
  if (backend_ != Backend::kPostgres) return;
  absl::StatusOr<segserve::testing::PostgresServer*> server =
      segserve::testing::SharedPostgresServer();
  database_ = server.ok() ? (*server)->CreateDatabase() : server.status();
}

absl::Status StoreFactory::available() const {
  return backend_ == Backend::kPostgres ? database_.status() : absl::OkStatus();
}

std::string StoreFactory::conninfo() const {
  if (backend_ != Backend::kPostgres || !database_.ok()) return "";
  return (*segserve::testing::SharedPostgresServer())->ConnInfo(*database_);
}

absl::StatusOr<std::unique_ptr<JobStore>> StoreFactory::Open(const std::string& conninfo_extra) {
  if (backend_ == Backend::kSqlite) {
    auto store = SqliteJobStore::Open(dir_.db());
    if (!store.ok()) return store.status();
    return std::unique_ptr<JobStore>(std::move(*store));
  }
  if (!database_.ok()) return database_.status();
  postgres::ConnectOptions options;
  options.conninfo = conninfo() + conninfo_extra;
  auto store = PostgresJobStore::Open(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<JobStore>(std::move(*store));
}

std::unique_ptr<JobStore> OpenOrFail(StoreFactory& factory) {
  auto store = factory.Open();
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

std::string Spec(const std::string& name, int epochs, int hold_before_epoch,
                 const std::string& fail) {
  nlohmann::json j = {{"name", name}, {"epochs", epochs}};
  if (hold_before_epoch > 0) j["hold_before_epoch"] = hold_before_epoch;
  if (!fail.empty()) j["fail"] = fail;
  return j.dump();
}

absl::Status ScriptedRunner::Run(const Job& job, JobContext& ctx) {
  nlohmann::json spec = nlohmann::json::parse(job.spec_json);
  const std::string name = spec.value("name", job.id);
  const int epochs = spec.value("epochs", 1);
  const int hold = spec.value("hold_before_epoch", 0);
  {
    std::lock_guard<std::mutex> lock(mu_);
    started_.push_back(job);
    names_.push_back(name);
    concurrent_max_ = std::max(concurrent_max_, ++running_);
    cv_.notify_all();
  }
  struct Leave {
    ScriptedRunner* r;
    ~Leave() {
      std::lock_guard<std::mutex> lock(r->mu_);
      --r->running_;
    }
  } leave{this};
  double val_iou = 0;
  for (int epoch = job.last_completed_epoch + 1; epoch <= epochs; ++epoch) {
    if (epoch == hold) {
      std::unique_lock<std::mutex> lock(mu_);
      holding_.insert(name);
      cv_.notify_all();
      // The runner polls ctx.cancelled() as a training loop does at each step.
      while (!release_all_ && released_.count(name) == 0 && !ctx.cancelled()) {
        cv_.wait_for(lock, std::chrono::milliseconds(2));
      }
      holding_.erase(name);
    }
    if (ctx.cancelled()) {
      std::lock_guard<std::mutex> lock(mu_);
      saw_cancel_.insert(name);
      return absl::CancelledError("stopped at epoch " + std::to_string(epoch));
    }
    val_iou = epoch / 10.0;
    JobProgress progress;
    progress.epoch = epoch;
    progress.epochs = epochs;
    progress.val_iou = val_iou;
    progress.fraction = static_cast<double>(epoch) / epochs;
    ctx.ReportProgress(progress);
    ctx.AddTrainingImages(8);
    absl::Status status = ctx.MarkEpochCompleted(epoch);
    if (!status.ok()) return status;
    std::lock_guard<std::mutex> lock(mu_);
    epochs_[name].push_back(epoch);
  }
  if (spec.contains("fail")) return absl::InternalError(spec["fail"].get<std::string>());
  ctx.SetResult(
      nlohmann::json(
          {{"name", name}, {"val_iou", val_iou}, {"first_epoch", job.last_completed_epoch + 1}})
          .dump());
  return absl::OkStatus();
}

void ScriptedRunner::WaitForStarts(size_t count) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return started_.size() >= count; });
}

void ScriptedRunner::WaitHolding(const std::string& name) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return holding_.count(name) > 0; });
}

void ScriptedRunner::Release(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  released_.insert(name);
  cv_.notify_all();
}

void ScriptedRunner::ReleaseAll() {
  std::lock_guard<std::mutex> lock(mu_);
  release_all_ = true;
  cv_.notify_all();
}

std::vector<std::string> ScriptedRunner::started() const {
  std::lock_guard<std::mutex> lock(mu_);
  return names_;
}

std::vector<Job> ScriptedRunner::started_jobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return started_;
}

std::vector<int> ScriptedRunner::epochs_run(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = epochs_.find(name);
  return it == epochs_.end() ? std::vector<int>{} : it->second;
}

bool ScriptedRunner::saw_cancel(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return saw_cancel_.count(name) > 0;
}

int ScriptedRunner::concurrent_max() const {
  std::lock_guard<std::mutex> lock(mu_);
  return concurrent_max_;
}

absl::StatusOr<Job> WaitTerminal(Scheduler& scheduler, const JobId& id) {
  auto subscription = scheduler.Watch(id);
  if (!subscription.ok()) return subscription.status();
  while (true) {
    std::optional<JobEvent> event = (*subscription)->Next(std::chrono::seconds(60));
    if (!event) return absl::DeadlineExceededError("no terminal event for " + id);
    if (event->terminal) return event->job;
  }
}

double MetricValue(const metrics::Metrics& metrics, const std::string& name,
                   const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& family : metrics.registry()->Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::map<std::string, std::string> have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have != labels) continue;
      return family.type == prometheus::MetricType::Counter ? metric.counter.value
                                                            : metric.gauge.value;
    }
  }
  return -1;
}

Job MakeJob(const std::string& id, int priority, JobKind kind, const std::string& parent) {
  Job job;
  job.id = id;
  job.kind = kind;
  job.priority = priority;
  job.parent_id = parent;
  job.created = TimePoint(std::chrono::milliseconds(1700000000123));
  job.spec_json = R"({"name":")" + id + R"("})";
  return job;
}

}  // namespace segserve::scheduler::testing
