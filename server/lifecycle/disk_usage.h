// File: server/lifecycle/disk_usage.h — how full --data_dir is, as Prometheus gauges:
// segserve_data_dir_bytes{kind="models|datasets|runs|jobs_db"} (apparent file sizes) and
// segserve_data_dir_free_bytes / segserve_data_dir_capacity_bytes (statvfs of the file
// system holding it). Measured by a background thread every `interval`, and synchronously
// by Refresh() after each change (a delete, an import, a finished job), so a scrape right
// after the change sees it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "server/metrics/metrics.h"

namespace segserve::lifecycle {

struct DiskUsage {
  int64_t models = 0;
  int64_t datasets = 0;
  int64_t runs = 0;
  int64_t jobs_db = 0;  // jobs.db with its -wal and -shm files
  int64_t free = 0;     // bytes available to the server's user (statvfs f_bavail)
  int64_t capacity = 0;
};

// Measures `data_dir` now (walks models/, datasets/, runs/; statvfs).
DiskUsage MeasureDiskUsage(const std::string& data_dir);

class DiskUsageMonitor {
 public:
  DiskUsageMonitor(std::string data_dir, std::chrono::milliseconds interval,
                   metrics::Metrics& metrics);
  ~DiskUsageMonitor();  // Stop()
  DiskUsageMonitor(const DiskUsageMonitor&) = delete;
  DiskUsageMonitor& operator=(const DiskUsageMonitor&) = delete;

  // Starts the periodic measuring thread (the first measurement is Refresh()'s).
  void Start();
  void Stop();
  // Measures now, on the calling thread, and sets the gauges.
  DiskUsage Refresh();

 private:
  void Loop();

  const std::string data_dir_;
  const std::chrono::milliseconds interval_;
  prometheus::Gauge* models_;
  prometheus::Gauge* datasets_;
  prometheus::Gauge* runs_;
  prometheus::Gauge* jobs_db_;
  prometheus::Gauge* free_;
  prometheus::Gauge* capacity_;
  absl::Mutex refresh_mu_;  // one measurement at a time: gauges follow the latest
  absl::Mutex mu_;
  absl::CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace segserve::lifecycle
