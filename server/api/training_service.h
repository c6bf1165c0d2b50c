// File: server/api/training_service.h — segserve.v1.Training: submit training jobs,
// sweeps and experiments to the durable scheduler, query, cancel and watch them.
#pragma once

#include <string>

#include "segserve/v1/training.grpc.pb.h"
#include "server/api/access_control.h"
#include "server/common/thread_pool.h"
#include "server/lifecycle/retention.h"
#include "server/scheduler/scheduler.h"

namespace segserve::data {
class DatasetIndex;
}  // namespace segserve::data

namespace segserve::api {

class TrainingService final : public v1::Training::CallbackService {
 public:
  // `data_dir`: where data sets and pretrained files named in specs must live.
  // Everything that reads or writes the job store (or validates a spec against the data
  // directory) runs on `store_pool`, never on a gRPC thread; a full pool answers
  // RESOURCE_EXHAUSTED. PurgeJobs runs `retention`'s Purge on `control_pool` (both may be
  // null: PurgeJobs then answers UNIMPLEMENTED).
  // `datasets` (may be null: folders under data_dir): the index specs' data sets are looked
  // up in.
  TrainingService(scheduler::Scheduler& scheduler, std::string data_dir, AccessControl& access,
                  common::ThreadPool& store_pool, lifecycle::RunRetention* retention = nullptr,
                  common::ThreadPool* control_pool = nullptr,
                  data::DatasetIndex* datasets = nullptr);

  grpc::ServerUnaryReactor* SubmitTrain(grpc::CallbackServerContext* context,
                                        const v1::TrainSpec* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context, const v1::JobRef* request,
                                   v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::JobRef* request, v1::Job* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* context,
                                                   const v1::JobRef* request) override;
  grpc::ServerUnaryReactor* SubmitExperiment(grpc::CallbackServerContext* context,
                                             const v1::ExperimentSpec* request,
                                             v1::Job* response) override;
  grpc::ServerUnaryReactor* PurgeJobs(grpc::CallbackServerContext* context,
                                      const v1::PurgeJobsRequest* request,
                                      v1::PurgeJobsResponse* response) override;

 private:
  scheduler::Scheduler& scheduler_;
  const std::string data_dir_;
  AccessControl& access_;
  common::ThreadPool& store_pool_;
  lifecycle::RunRetention* const retention_;
  common::ThreadPool* const control_pool_;
  data::DatasetIndex* const datasets_;
};

// A job as the API shows it (train spec included when the job is a training job/sweep,
// experiment spec when it is an experiment).
void ExportJob(const scheduler::Job& job, v1::Job* out);

}  // namespace segserve::api
