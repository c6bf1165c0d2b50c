// File: server/api/datasets_service.h — segserve.v1.Datasets: the data sets under
// <data_dir>/datasets, and synthetic generation as a scheduler job (kind SYNTH).
#pragma once

#include <string>

#include "segserve/v1/datasets.grpc.pb.h"
#include "server/api/access_control.h"
#include "server/scheduler/scheduler.h"

namespace segserve::api {

class DatasetsService final : public v1::Datasets::CallbackService {
 public:
  DatasetsService(scheduler::Scheduler& scheduler, std::string data_dir, AccessControl& access);

  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const v1::ListDatasetsRequest* request,
                                 v1::ListDatasetsResponse* response) override;
  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const v1::GenerateDatasetRequest* request,
                                     v1::Job* response) override;

 private:
  scheduler::Scheduler& scheduler_;
  const std::string data_dir_;
  AccessControl& access_;
};

}  // namespace segserve::api
