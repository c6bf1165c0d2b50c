// File: server/scheduler/scheduler_metrics.h — the scheduler's Prometheus families:
// segserve_training_jobs{state}, segserve_job_queue_depth,
// segserve_training_images_total, segserve_training_epoch{job_id},
// segserve_training_val_iou{job_id}, segserve_job_store_healthy,
// segserve_job_leases_{lost,expired}_total. Per-job series exist while the
// job runs.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/job.h"

namespace segserve::scheduler {

class SchedulerMetrics {
 public:
  // `metrics` may be null (no metrics recorded).
  explicit SchedulerMetrics(metrics::Metrics* metrics);

  void SetStateCounts(const std::map<JobState, int64_t>& counts);
  // A job entered `to` (from `from`, or newly submitted).
  void Transition(std::optional<JobState> from, JobState to);
  void SetQueueDepth(int64_t depth);
  void AddTrainingImages(int64_t images);
  void AddTrainingStepTime(double step_seconds, double loader_wait_seconds);
  void SetJobProgress(const JobId& job, int epoch, double val_iou);
  void RemoveJob(const JobId& job);
  // segserve_job_store_healthy: 1 when the job store opened and passed its integrity check.
  void SetStoreHealthy(bool healthy);
  // segserve_job_leases_lost_total: runs on this replica that lost their lease (paused or
  // cut off past it; the job was re-queued for another worker) and were stopped.
  // segserve_job_leases_expired_total: jobs this replica re-queued because their worker's
  // lease expired.
  void LeaseLost();
  void LeasesExpired(int64_t n);

 private:
  prometheus::Family<prometheus::Gauge>* jobs_ = nullptr;
  prometheus::Gauge* queue_depth_ = nullptr;
  prometheus::Counter* images_ = nullptr;
  prometheus::Counter* step_seconds_ = nullptr;
  prometheus::Counter* loader_wait_seconds_ = nullptr;
  prometheus::Family<prometheus::Gauge>* epoch_ = nullptr;
  prometheus::Family<prometheus::Gauge>* val_iou_ = nullptr;
  prometheus::Gauge* store_healthy_ = nullptr;
  prometheus::Counter* leases_lost_ = nullptr;
  prometheus::Counter* leases_expired_ = nullptr;
  std::mutex mu_;  // Family::Add/Remove are thread-safe; this keeps Remove after Add.
};

}  // namespace segserve::scheduler
