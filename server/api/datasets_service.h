// File: server/api/datasets_service.h — segserve.v1.Datasets: the data sets of the data-set
// index (folders under <data_dir>/datasets; the index: server/data/dataset_index.h), synthetic generation as a scheduler job (kind SYNTH), and uploads
// (a client stream written to a staging directory by the upload pool).
#pragma once

#include <functional>
#include <string>

#include "segserve/v1/datasets.grpc.pb.h"
#include "server/api/access_control.h"
#include "server/common/thread_pool.h"
#include "server/data/dataset_index.h"
#include "server/data/upload.h"
#include "server/scheduler/scheduler.h"

namespace segserve::api {

class DatasetsService final : public v1::Datasets::CallbackService {
 public:
  // List (a directory scan or a query) and Generate (a job-store commit) run on
  // `store_pool`, Delete
  // (long file removal) on `control_pool`; a full pool answers RESOURCE_EXHAUSTED.
  // Upload's file writes, validation and publishing run on `upload_pool`, one task per
  // received message, never more than one per stream at a time. `on_change` (may be
  // empty) runs after a delete or an upload, e.g. to refresh the disk usage gauges.
  DatasetsService(scheduler::Scheduler& scheduler, data::DatasetIndex& index, AccessControl& access,
                  common::ThreadPool& store_pool, common::ThreadPool& control_pool,
                  common::ThreadPool& upload_pool, data::UploadLimits upload_limits,
                  std::function<void()> on_change = nullptr);

  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const v1::ListDatasetsRequest* request,
                                 v1::ListDatasetsResponse* response) override;
  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const v1::GenerateDatasetRequest* request,
                                     v1::Job* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteDatasetRequest* request,
                                   v1::DeleteDatasetResponse* response) override;
  grpc::ServerReadReactor<v1::UploadDatasetChunk>* Upload(grpc::CallbackServerContext* context,
                                                          v1::DatasetInfo* response) override;

 private:
  scheduler::Scheduler& scheduler_;
  data::DatasetIndex& index_;
  AccessControl& access_;
  common::ThreadPool& store_pool_;
  common::ThreadPool& control_pool_;
  common::ThreadPool& upload_pool_;
  data::DatasetUploads uploads_;
  std::function<void()> on_change_;
};

}  // namespace segserve::api
