#include "server/api/unimplemented_services.h"

#include <string>

namespace segserve::api {
namespace {

grpc::Status NotYet(const char* method) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      std::string(method) + " is not implemented in this segserve build yet");
}

grpc::ServerUnaryReactor* FinishNotYet(grpc::CallbackServerContext* ctx, const char* method) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(NotYet(method));
  return reactor;
}

}  // namespace

#define SEGSERVE_UNARY_NOT_YET(Service, Method, Request, Response)                      \
  grpc::ServerUnaryReactor* Service::Method(grpc::CallbackServerContext* ctx, const Request*, \
                                            Response*) {                                 \
    return FinishNotYet(ctx, (std::string(Service::kName) + #Method).c_str());                                      \
  }

SEGSERVE_UNARY_NOT_YET(UnimplementedSusceptibility, Analyze, v1::AnalyzeRequest,
                       v1::SusceptibilityReport)
SEGSERVE_UNARY_NOT_YET(UnimplementedSusceptibility, SubmitAnalysis, v1::AnalyzeRequest,
                       v1::AnalysisJob)

#undef SEGSERVE_UNARY_NOT_YET

}  // namespace segserve::api
