// File: server/api/training_service.h — segserve.v1.Training: submit training jobs and
// sweeps to the durable scheduler, query, cancel and watch them.
#pragma once

#include <string>

#include "segserve/v1/training.grpc.pb.h"
#include "server/api/access_control.h"
#include "server/scheduler/scheduler.h"

namespace segserve::api {

class TrainingService final : public v1::Training::CallbackService {
 public:
  // `data_dir`: where data sets and pretrained files named in specs must live.
  TrainingService(scheduler::Scheduler& scheduler, std::string data_dir, AccessControl& access);

  grpc::ServerUnaryReactor* SubmitTrain(grpc::CallbackServerContext* context,
                                        const v1::TrainSpec* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::JobRef* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::JobRef* request, v1::Job* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* context,
                                                   const v1::JobRef* request) override;

 private:
  scheduler::Scheduler& scheduler_;
  const std::string data_dir_;
  AccessControl& access_;
};

// A job as the API shows it (train spec included when the job is a training job/sweep).
void ExportJob(const scheduler::Job& job, v1::Job* out);

}  // namespace segserve::api
