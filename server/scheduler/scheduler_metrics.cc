#include "server/scheduler/scheduler_metrics.h"

#include "prometheus/counter.h"
#include "prometheus/gauge.h"

namespace segserve::scheduler {

SchedulerMetrics::SchedulerMetrics(metrics::Metrics* metrics) {
  if (metrics == nullptr) return;
  prometheus::Registry& registry = *metrics->registry();
  jobs_ = &prometheus::BuildGauge()
               .Name("segserve_training_jobs")
               .Help("Jobs known to the scheduler (all kinds), by state.")
               .Register(registry);
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("segserve_job_queue_depth")
                      .Help("Jobs waiting for a slot (QUEUED, sweep parents excluded).")
                      .Register(registry)
                      .Add({});
  images_ = &prometheus::BuildCounter()
                 .Name("segserve_training_images_total")
                 .Help("Training images processed; its rate is training throughput.")
                 .Register(registry)
                 .Add({});
  step_seconds_ = &prometheus::BuildCounter()
                       .Name("segserve_training_step_seconds_total")
                       .Help("Seconds spent in training steps (loader wait included).")
                       .Register(registry)
                       .Add({});
  loader_wait_seconds_ =
      &prometheus::BuildCounter()
           .Name("segserve_training_loader_wait_seconds_total")
           .Help(
               "Seconds training steps waited for the data loader's next batch; divided by "
               "segserve_training_step_seconds_total it is the loader's share of step time.")
           .Register(registry)
           .Add({});
  epoch_ = &prometheus::BuildGauge()
                .Name("segserve_training_epoch")
                .Help("Current epoch (1-based) of each running job.")
                .Register(registry);
  val_iou_ = &prometheus::BuildGauge()
                  .Name("segserve_training_val_iou")
                  .Help("Latest validation mean IoU of each running job.")
                  .Register(registry);
  store_healthy_ = &prometheus::BuildGauge()
                        .Name("segserve_job_store_healthy")
                        .Help(
                            "1 when jobs.db opened and passed its integrity check; 0 when "
                            "the job services are unavailable (docs/RELIABILITY.md).")
                        .Register(registry)
                        .Add({});
  leases_lost_ = &prometheus::BuildCounter()
                      .Name("segserve_job_leases_lost_total")
                      .Help("Runs on this replica stopped because they lost their lease (the "
                            "replica was paused or cut off past it; another worker resumes "
                            "the job); their later writes were refused.")
                      .Register(registry)
                      .Add({});
  leases_expired_ = &prometheus::BuildCounter()
                         .Name("segserve_job_leases_expired_total")
                         .Help("Jobs this replica re-queued because their worker stopped "
                               "renewing its lease (died, paused or cut off).")
                         .Register(registry)
                         .Add({});
  for (JobState s : kAllJobStates) jobs_->Add({{"state", JobStateName(s)}});
}

void SchedulerMetrics::LeaseLost() {
  if (leases_lost_) leases_lost_->Increment();
}

void SchedulerMetrics::LeasesExpired(int64_t n) {
  if (leases_expired_ && n > 0) leases_expired_->Increment(static_cast<double>(n));
}

void SchedulerMetrics::SetStoreHealthy(bool healthy) {
  if (store_healthy_) store_healthy_->Set(healthy ? 1 : 0);
}

void SchedulerMetrics::SetStateCounts(const std::map<JobState, int64_t>& counts) {
  if (!jobs_) return;
  for (JobState s : kAllJobStates) {
    auto it = counts.find(s);
    jobs_->Add({{"state", JobStateName(s)}}).Set(it == counts.end() ? 0 : it->second);
  }
}

void SchedulerMetrics::Transition(std::optional<JobState> from, JobState to) {
  if (!jobs_) return;
  if (from) jobs_->Add({{"state", JobStateName(*from)}}).Decrement();
  jobs_->Add({{"state", JobStateName(to)}}).Increment();
}

void SchedulerMetrics::SetQueueDepth(int64_t depth) {
  if (queue_depth_) queue_depth_->Set(static_cast<double>(depth));
}

void SchedulerMetrics::AddTrainingImages(int64_t images) {
  if (images_ && images > 0) images_->Increment(static_cast<double>(images));
}

void SchedulerMetrics::AddTrainingStepTime(double step_seconds, double loader_wait_seconds) {
  if (step_seconds_ && step_seconds > 0) step_seconds_->Increment(step_seconds);
  if (loader_wait_seconds_ && loader_wait_seconds > 0) {
    loader_wait_seconds_->Increment(loader_wait_seconds);
  }
}

// The label is job_id, not job: Prometheus attaches job="<scrape job>" to every target,
// and a scraped `job` label clashes with it (renamed to exported_job, or, with
// honor_labels, replaces the target's job so the series leave job="segserve").
void SchedulerMetrics::SetJobProgress(const JobId& job, int epoch, double val_iou) {
  if (!epoch_) return;
  std::lock_guard<std::mutex> lock(mu_);
  epoch_->Add({{"job_id", job}}).Set(epoch);
  val_iou_->Add({{"job_id", job}}).Set(val_iou);
}

void SchedulerMetrics::RemoveJob(const JobId& job) {
  if (!epoch_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (epoch_->Has({{"job_id", job}})) epoch_->Remove(&epoch_->Add({{"job_id", job}}));
  if (val_iou_->Has({{"job_id", job}})) val_iou_->Remove(&val_iou_->Add({{"job_id", job}}));
}

}  // namespace segserve::scheduler
