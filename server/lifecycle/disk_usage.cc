#include "server/lifecycle/disk_usage.h"

#include <sys/statvfs.h>

#include "absl/time/clock.h"
#include "server/common/dir_util.h"

namespace segserve::lifecycle {

DiskUsage MeasureDiskUsage(const std::string& data_dir) {
  DiskUsage usage;
  // The file store, or with --database the blob directory and the large-object cache.
  usage.models = common::DirectoryBytes(data_dir + "/models") +
                 common::DirectoryBytes(data_dir + "/blobs/models") +
                 common::DirectoryBytes(data_dir + "/cache/models");
  usage.datasets = common::DirectoryBytes(data_dir + "/datasets");
  usage.runs = common::DirectoryBytes(data_dir + "/runs");
  for (const char* suffix : {"", "-wal", "-shm"}) {
    usage.jobs_db += common::DirectoryBytes(data_dir + "/jobs.db" + suffix);
  }
  struct statvfs fs {};
  if (::statvfs(data_dir.c_str(), &fs) == 0) {
    usage.free = static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
    usage.capacity = static_cast<int64_t>(fs.f_blocks) * static_cast<int64_t>(fs.f_frsize);
  }
  return usage;
}

DiskUsageMonitor::DiskUsageMonitor(std::string data_dir, std::chrono::milliseconds interval,
                                   metrics::Metrics& metrics)
    : data_dir_(std::move(data_dir)), interval_(interval) {
  auto& bytes = prometheus::BuildGauge()
                    .Name("segserve_data_dir_bytes")
                    .Help(
                        "Bytes of files under --data_dir by kind: models, datasets, runs "
                        "(training run directories), jobs_db (jobs.db with its WAL)")
                    .Register(*metrics.registry());
  models_ = &bytes.Add({{"kind", "models"}});
  datasets_ = &bytes.Add({{"kind", "datasets"}});
  runs_ = &bytes.Add({{"kind", "runs"}});
  jobs_db_ = &bytes.Add({{"kind", "jobs_db"}});
  free_ = &prometheus::BuildGauge()
               .Name("segserve_data_dir_free_bytes")
               .Help(
                   "Bytes still available to segserve on the file system of --data_dir "
                   "(statvfs f_bavail)")
               .Register(*metrics.registry())
               .Add({});
  capacity_ = &prometheus::BuildGauge()
                   .Name("segserve_data_dir_capacity_bytes")
                   .Help("Size of the file system holding --data_dir (statvfs f_blocks)")
                   .Register(*metrics.registry())
                   .Add({});
}

DiskUsageMonitor::~DiskUsageMonitor() { Stop(); }

void DiskUsageMonitor::Start() {
  Refresh();
  thread_ = std::thread([this] { Loop(); });
}

void DiskUsageMonitor::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void DiskUsageMonitor::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    const absl::Time until = absl::Now() + absl::FromChrono(interval_);
    while (!stopping_) {
      if (cv_.WaitWithDeadline(&mu_, until)) break;  // timed out
    }
    if (stopping_) return;
    mu_.Unlock();
    Refresh();
    mu_.Lock();
  }
}

DiskUsage DiskUsageMonitor::Refresh() {
  absl::MutexLock lock(&refresh_mu_);
  const DiskUsage usage = MeasureDiskUsage(data_dir_);
  models_->Set(static_cast<double>(usage.models));
  datasets_->Set(static_cast<double>(usage.datasets));
  runs_->Set(static_cast<double>(usage.runs));
  jobs_db_->Set(static_cast<double>(usage.jobs_db));
  free_->Set(static_cast<double>(usage.free));
  capacity_->Set(static_cast<double>(usage.capacity));
  return usage;
}

}  // namespace segserve::lifecycle
