// Job store costs of the distributed mode: SQLite (the single-box default, a file in a temp
// dir) against PostgreSQL (--postgres: libpq key=value pairs naming a server without
// dbname; a fresh database is created per phase), in one run, through the same JobStore
// calls the scheduler makes:
//   submit      Insert of one job per call (a SubmitTrain), jobs/s and per-call latency;
//   claim x1    Claim on a queue of --queue jobs by one worker: latency, claims/s;
//   renew       RenewLease of a claimed job (a running job's heartbeat): latency;
//   claim x4    4 workers, each with its own store (its own connection), claiming from
//               one queue at once: latency, total claims/s, and a check that no job was
//               taken twice.
// bench/scale/run.sh starts a private PostgreSQL and runs this; docs/PERFORMANCE.md
// "Distributed mode (issue 13)" quotes it.
//
//   scale_store_bench --postgres "host=/tmp/pg user=segserve" [--submits 1000]
//                     [--queue 5000] [--claims 1000] [--claimers 4]
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/postgres/connection.h"
#include "server/scheduler/postgres_job_store.h"
#include "server/scheduler/sqlite_job_store.h"

namespace {

using namespace segserve::scheduler;  // NOLINT(build/namespaces): a benchmark's main
using Clock = std::chrono::steady_clock;

constexpr auto kLease = std::chrono::seconds(30);

double Ms(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

struct Latency {
  double median = 0, p99 = 0;
};

Latency Summarise(std::vector<double> ms) {
  Latency out;
  if (ms.empty()) return out;
  std::sort(ms.begin(), ms.end());
  out.median = ms[ms.size() / 2];
  const size_t p99 = static_cast<size_t>(std::ceil(0.99 * ms.size())) - 1;
  out.p99 = ms[std::min(p99, ms.size() - 1)];
  return out;
}

// A train job as SubmitTrain writes it (a spec of realistic size).
Job TrainJob(const std::string& id) {
  Job job;
  job.id = id;
  job.kind = JobKind::kTrain;
  job.created = std::chrono::system_clock::now();
  job.spec_json = absl::StrCat(
      R"({"dataset":"plasmodium-synth","encoder":"resnet18","prune_level":1,"epochs":20,)",
      R"("batch_size":8,"lr":0.001,"seed":1,"crop_size":256,"max_steps_per_epoch":0,)",
      R"("early_stopping":0,"precision":"fp32","device":"cpu","color":false,)",
      R"("cross_domain":["brightness:4","contrast:3"],"model_name":")", id, R"(","alias":""})");
  return job;
}

[[noreturn]] void Die(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), status.ToString().c_str());
  std::exit(1);
}

// Opens a fresh, empty store of one backend (a new file / a new database) per call.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // A new empty store location; Open() then opens connections to it.
  virtual void Fresh() = 0;
  virtual std::unique_ptr<JobStore> Open() = 0;
};

class SqliteBackend : public Backend {
 public:
  explicit SqliteBackend(std::string dir) : dir_(std::move(dir)) {}
  std::string name() const override { return "SQLite"; }
  void Fresh() override { path_ = absl::StrCat(dir_, "/jobs-", ++n_, ".db"); }
  std::unique_ptr<JobStore> Open() override {
    auto store = SqliteJobStore::Open(path_);
    if (!store.ok()) Die("open " + path_, store.status());
    return std::move(*store);
  }

 private:
  std::string dir_, path_;
  int n_ = 0;
};

class PostgresBackend : public Backend {
 public:
  explicit PostgresBackend(std::string conninfo) : conninfo_(std::move(conninfo)) {
    segserve::postgres::ConnectOptions options;
    options.conninfo = conninfo_ + " dbname=postgres";
    options.what = "bench PostgreSQL";
    auto admin = segserve::postgres::Connection::Open(options);
    if (!admin.ok()) Die("connect", admin.status());
    admin_ = std::move(*admin);
  }
  std::string name() const override { return "PostgreSQL"; }
  void Fresh() override {
    dbname_ = absl::StrCat("store_bench_", getpid(), "_", ++n_);
    auto created = admin_->ExecSql("CREATE DATABASE " + dbname_);
    if (!created.ok()) Die("create database", created.status());
  }
  std::unique_ptr<JobStore> Open() override {
    segserve::postgres::ConnectOptions options;
    options.conninfo = absl::StrCat(conninfo_, " dbname=", dbname_);
    options.what = "job database";
    options.application_name = "scale_store_bench";
    auto store = PostgresJobStore::Open(options);
    if (!store.ok()) Die("open " + dbname_, store.status());
    return std::move(*store);
  }

 private:
  std::string conninfo_, dbname_;
  std::unique_ptr<segserve::postgres::Connection> admin_;
  int n_ = 0;
};

struct Figures {
  double submit_per_s = 0;
  Latency submit;
  double claim1_per_s = 0;
  Latency claim1;
  Latency renew;
  double claimn_per_s = 0;
  Latency claimn;
  int duplicates = 0;
};

void FillQueue(JobStore& store, int n, const std::string& prefix) {
  std::vector<Job> batch;
  for (int i = 0; i < n; ++i) {
    batch.push_back(TrainJob(absl::StrCat(prefix, i)));
    if (batch.size() == 500 || i + 1 == n) {
      if (absl::Status s = store.Insert(batch); !s.ok()) Die("fill queue", s);
      batch.clear();
    }
  }
}

Figures Measure(Backend& backend, int submits, int queue, int claims, int claimers) {
  Figures f;
  {  // submit: one job per Insert, as SubmitTrain does.
    backend.Fresh();
    auto store = backend.Open();
    std::vector<double> ms;
    const auto start = Clock::now();
    for (int i = 0; i < submits; ++i) {
      const auto t = Clock::now();
      if (absl::Status s = store->Insert({TrainJob(absl::StrCat("job-s", i))}); !s.ok()) {
        Die("insert", s);
      }
      ms.push_back(Ms(t, Clock::now()));
    }
    f.submit_per_s = submits / (Ms(start, Clock::now()) / 1000);
    f.submit = Summarise(ms);
  }
  {  // claim x1, then renew the claimed jobs' leases.
    backend.Fresh();
    auto store = backend.Open();
    FillQueue(*store, queue, "job-q");
    std::vector<double> ms;
    std::vector<Job> claimed;
    const auto start = Clock::now();
    for (int i = 0; i < claims; ++i) {
      const auto t = Clock::now();
      auto job = store->Claim("bench-worker-0", kLease, std::chrono::system_clock::now());
      ms.push_back(Ms(t, Clock::now()));
      if (!job.ok()) Die("claim", job.status());
      if (!job->has_value()) Die("claim", absl::InternalError("queue ran empty"));
      claimed.push_back(**job);
    }
    f.claim1_per_s = claims / (Ms(start, Clock::now()) / 1000);
    f.claim1 = Summarise(ms);
    ms.clear();
    for (const Job& job : claimed) {
      const auto t = Clock::now();
      auto renewed = store->RenewLease(job.id, job.attempt, kLease);
      ms.push_back(Ms(t, Clock::now()));
      if (!renewed.ok()) Die("renew", renewed.status());
    }
    f.renew = Summarise(ms);
  }
  {  // claim xN: N workers, each on its own store, one queue.
    backend.Fresh();
    {
      auto filler = backend.Open();
      FillQueue(*filler, queue, "job-q");
    }
    std::vector<std::unique_ptr<JobStore>> stores;
    for (int w = 0; w < claimers; ++w) stores.push_back(backend.Open());
    std::vector<std::vector<double>> ms(claimers);
    std::vector<std::vector<std::string>> ids(claimers);
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int w = 0; w < claimers; ++w) {
      threads.emplace_back([&, w] {
        while (!go.load()) std::this_thread::yield();
        const std::string owner = absl::StrCat("bench-worker-", w);
        for (int i = 0; i < claims / claimers; ++i) {
          const auto t = Clock::now();
          auto job = stores[w]->Claim(owner, kLease, std::chrono::system_clock::now());
          ms[w].push_back(Ms(t, Clock::now()));
          if (!job.ok()) Die("claim", job.status());
          if (!job->has_value()) Die("claim", absl::InternalError("queue ran empty"));
          ids[w].push_back((*job)->id);
        }
      });
    }
    const auto start = Clock::now();
    go = true;
    for (std::thread& t : threads) t.join();
    const double seconds = Ms(start, Clock::now()) / 1000;
    std::vector<double> all;
    std::set<std::string> unique;
    size_t total = 0;
    for (int w = 0; w < claimers; ++w) {
      all.insert(all.end(), ms[w].begin(), ms[w].end());
      unique.insert(ids[w].begin(), ids[w].end());
      total += ids[w].size();
    }
    f.claimn_per_s = total / seconds;
    f.claimn = Summarise(all);
    f.duplicates = static_cast<int>(total - unique.size());
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int submits = 1000, queue = 5000, claims = 1000, claimers = 4;
  std::string postgres;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--postgres")) postgres = argv[i + 1];
    if (!std::strcmp(argv[i], "--submits")) submits = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--queue")) queue = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--claims")) claims = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--claimers")) claimers = std::atoi(argv[i + 1]);
  }
  if (postgres.empty() || claims > queue || claimers < 1) {
    std::fprintf(stderr,
                 "usage: scale_store_bench --postgres 'host=DIR user=ROLE' [--submits N] "
                 "[--queue N] [--claims N <= queue] [--claimers N]\n");
    return 2;
  }
  // The stores log each open and migration at info: keep the table readable.
  segserve::common::SetLogLevel(segserve::common::LogLevel::kWarning);
  char tmpl[] = "/tmp/segserve_store_bench_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  SqliteBackend sqlite(dir);
  PostgresBackend pg(postgres);
  std::printf("submits %d (one job per Insert), queue %d jobs, %d claims (x1 and x%d)\n",
              submits, queue, claims, claimers);
  const Figures s = Measure(sqlite, submits, queue, claims, claimers);
  const Figures p = Measure(pg, submits, queue, claims, claimers);
  std::filesystem::remove_all(dir);

  auto row = [](const std::string& what, double a, double b, const char* unit) {
    std::printf("| %s | %.3f | %.3f | %.2f | %s |\n", what.c_str(), a, b, a > 0 ? b / a : 0,
                unit);
  };
  std::printf("\n| figure | SQLite | PostgreSQL | PG/SQLite | unit |\n|---|---:|---:|---:|---|\n");
  row("submit (Insert of 1 job)", s.submit_per_s, p.submit_per_s, "jobs/s");
  row("submit latency median", s.submit.median, p.submit.median, "ms");
  row("submit latency p99", s.submit.p99, p.submit.p99, "ms");
  row("claim x1 latency median", s.claim1.median, p.claim1.median, "ms");
  row("claim x1 latency p99", s.claim1.p99, p.claim1.p99, "ms");
  row("claim x1 throughput", s.claim1_per_s, p.claim1_per_s, "claims/s");
  row("renew lease latency median", s.renew.median, p.renew.median, "ms");
  row("renew lease latency p99", s.renew.p99, p.renew.p99, "ms");
  const std::string n = absl::StrCat("claim x", claimers);
  row(n + " latency median", s.claimn.median, p.claimn.median, "ms");
  row(n + " latency p99", s.claimn.p99, p.claimn.p99, "ms");
  row(n + " throughput (all workers)", s.claimn_per_s, p.claimn_per_s, "claims/s");
  std::printf("\njobs claimed twice: SQLite %d, PostgreSQL %d\n", s.duplicates, p.duplicates);
  return s.duplicates + p.duplicates == 0 ? 0 : 1;
}
