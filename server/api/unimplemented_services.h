// File: server/api/unimplemented_services.h — services of the v1 contract whose
// implementation has not landed yet. They are registered (so reflection lists them and
// clients can be written against them) and answer every call with UNIMPLEMENTED and a
// message naming the method. Each class is replaced when its issue lands.
#pragma once

#include "segserve/v1/datasets.grpc.pb.h"
#include "segserve/v1/susceptibility.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"

namespace segserve::api {

class UnimplementedSusceptibility final : public v1::Susceptibility::CallbackService {
 public:
  // Prefix of the full method names in messages.
  static constexpr char kName[] = "segserve.v1.Susceptibility/";

  grpc::ServerUnaryReactor* Analyze(grpc::CallbackServerContext* ctx, const v1::AnalyzeRequest*,
                                    v1::SusceptibilityReport*) override;
  grpc::ServerUnaryReactor* SubmitAnalysis(grpc::CallbackServerContext* ctx,
                                           const v1::AnalyzeRequest*,
                                           v1::AnalysisJob*) override;
};

class UnimplementedTraining final : public v1::Training::CallbackService {
 public:
  // Prefix of the full method names in messages.
  static constexpr char kName[] = "segserve.v1.Training/";

  grpc::ServerUnaryReactor* SubmitTrain(grpc::CallbackServerContext* ctx, const v1::TrainSpec*,
                                        v1::Job*) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const v1::JobRef*,
                                   v1::Job*) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest*,
                                     v1::ListJobsResponse*) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx, const v1::JobRef*,
                                      v1::Job*) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* ctx,
                                                   const v1::JobRef*) override;
};

class UnimplementedDatasets final : public v1::Datasets::CallbackService {
 public:
  // Prefix of the full method names in messages.
  static constexpr char kName[] = "segserve.v1.Datasets/";

  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* ctx,
                                 const v1::ListDatasetsRequest*,
                                 v1::ListDatasetsResponse*) override;
  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* ctx,
                                     const v1::GenerateDatasetRequest*, v1::Job*) override;
};

}  // namespace segserve::api
