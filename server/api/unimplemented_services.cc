#include "server/api/unimplemented_services.h"

#include <string>

namespace segserve::api {
namespace {

grpc::Status NotYet(const char* method) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      std::string(method) + " is not implemented in this segserve build yet");
}

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const char* method) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(NotYet(method));
  return reactor;
}

template <typename Response>
class FinishedWriter final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FinishedWriter(const char* method) { this->Finish(NotYet(method)); }
  void OnDone() override { delete this; }
};

}  // namespace

#define SEGSERVE_UNARY_NOT_YET(Service, Method, Request, Response)                      \
  grpc::ServerUnaryReactor* Service::Method(grpc::CallbackServerContext* ctx, const Request*, \
                                            Response*) {                                 \
    return FinishUnary(ctx, (std::string(Service::kName) + #Method).c_str());                                      \
  }

SEGSERVE_UNARY_NOT_YET(UnimplementedSusceptibility, Analyze, v1::AnalyzeRequest,
                       v1::SusceptibilityReport)
SEGSERVE_UNARY_NOT_YET(UnimplementedSusceptibility, SubmitAnalysis, v1::AnalyzeRequest,
                       v1::AnalysisJob)
SEGSERVE_UNARY_NOT_YET(UnimplementedTraining, SubmitTrain, v1::TrainSpec, v1::Job)
SEGSERVE_UNARY_NOT_YET(UnimplementedTraining, GetJob, v1::JobRef, v1::Job)
SEGSERVE_UNARY_NOT_YET(UnimplementedTraining, ListJobs, v1::ListJobsRequest,
                       v1::ListJobsResponse)
SEGSERVE_UNARY_NOT_YET(UnimplementedTraining, CancelJob, v1::JobRef, v1::Job)
SEGSERVE_UNARY_NOT_YET(UnimplementedDatasets, List, v1::ListDatasetsRequest,
                       v1::ListDatasetsResponse)
SEGSERVE_UNARY_NOT_YET(UnimplementedDatasets, Generate, v1::GenerateDatasetRequest, v1::Job)

#undef SEGSERVE_UNARY_NOT_YET

grpc::ServerWriteReactor<v1::JobEvent>* UnimplementedTraining::WatchJob(
    grpc::CallbackServerContext*, const v1::JobRef*) {
  return new FinishedWriter<v1::JobEvent>("segserve.v1.Training/WatchJob");
}

}  // namespace segserve::api
