// File: tests/lifecycle/fixture.h — a real scheduler on a real jobs.db in a temp data dir,
// a ManualClock (ages move without sleeping) and FilesRunner, a Runner double that writes a
// training run's files like the real one.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/common/clock.h"
#include "server/scheduler/scheduler.h"
#include "server/scheduler/sqlite_job_store.h"
#include "tests/scheduler/test_util.h"

namespace segserve::lifecycle::testing {

inline void WriteBytes(const std::string& path, size_t bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << std::string(bytes, 'x');
}

// Spec {"outcome": "succeed" | "fail" | "hold", "dataset": ...}: writes
// runs/<id>/{latest.ckpt,latest.optim,best.ckpt,train.log}; "succeed" also writes
// registered.json; "fail" returns an error; "hold" waits until cancelled or Release().
class FilesRunner : public scheduler::Runner {
 public:
  explicit FilesRunner(std::string data_dir) : data_dir_(std::move(data_dir)) {}

  absl::Status Run(const scheduler::Job& job, scheduler::JobContext& ctx) override {
    const nlohmann::json spec = nlohmann::json::parse(job.spec_json);
    const std::string dir = data_dir_ + "/runs/" + job.id;
    for (const char* file : {"latest.ckpt", "latest.optim", "best.ckpt", "train.log"}) {
      WriteBytes(dir + "/" + file, 1000);
    }
    const std::string outcome = spec.value("outcome", "succeed");
    if (outcome == "hold") {
      std::unique_lock<std::mutex> lock(mu_);
      holding_.insert(job.id);
      cv_.notify_all();
      while (!ctx.cancelled() && !released_.count(job.id)) {
        cv_.wait_for(lock, std::chrono::milliseconds(10));  // polls ctx.cancelled()
      }
      holding_.erase(job.id);
      if (ctx.cancelled()) return absl::CancelledError("cancelled");
      return absl::OkStatus();
    }
    if (outcome == "fail") return absl::InternalError("injected failure");
    WriteBytes(dir + "/registered.json", 10);
    return absl::OkStatus();
  }

  void WaitHolding(const std::string& id) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return holding_.count(id) > 0; });
  }
  void Release(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    released_.insert(id);
  }

 private:
  const std::string data_dir_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> holding_;
  std::set<std::string> released_;
};

class LifecycleFixture : public ::testing::Test {
 protected:
  LifecycleFixture() {
    clock_.Advance(std::chrono::hours(24 * 365 * 55));  // epoch 0 reads as "not reached"
    std::filesystem::create_directories(data_dir() + "/runs");
    std::filesystem::create_directories(data_dir() + "/datasets");
  }

  std::string data_dir() const { return dir_.path(); }
  std::string RunDir(const std::string& id) const { return data_dir() + "/runs/" + id; }
  bool Exists(const std::string& path) const { return std::filesystem::exists(path); }

  // A scheduler whose finished jobs go to `on_finished`.
  void MakeScheduler(std::function<void(const scheduler::Job&)> on_finished = nullptr,
                     int slots = 1) {
    auto store = scheduler::SqliteJobStore::Open(data_dir() + "/jobs.db");
    ASSERT_TRUE(store.ok()) << store.status();
    scheduler::SchedulerOptions options;
    options.training_slots = slots;
    options.on_finished = std::move(on_finished);
    scheduler::RunnerMap runners = {{scheduler::JobKind::kTrain, runner_},
                                    {scheduler::JobKind::kSynth, runner_}};
    auto scheduler =
        scheduler::Scheduler::Create(std::move(*store), runners, options, &clock_, &metrics_);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = std::move(*scheduler);
  }

  scheduler::Job Run(const std::string& outcome, const std::string& dataset = "ds") {
    auto job =
        scheduler_->Submit(scheduler::JobKind::kTrain,
                           nlohmann::json{{"outcome", outcome}, {"dataset", dataset}}.dump());
    EXPECT_TRUE(job.ok()) << job.status();
    auto done = scheduler::testing::WaitTerminal(*scheduler_, job->id);
    EXPECT_TRUE(done.ok()) << done.status();
    return *done;
  }

  scheduler::testing::TempDir dir_;
  common::ManualClock clock_;
  metrics::Metrics metrics_;
  std::shared_ptr<FilesRunner> runner_ = std::make_shared<FilesRunner>(dir_.path());
  std::unique_ptr<scheduler::Scheduler> scheduler_;
};

}  // namespace segserve::lifecycle::testing
