// File: server/api/unimplemented_services.h — services of the v1 contract whose
// implementation has not landed yet. They are registered (so reflection lists them and
// clients can be written against them) and answer every call with UNIMPLEMENTED and a
// message naming the method. Each class is replaced when its issue lands.
#pragma once

#include "segserve/v1/susceptibility.grpc.pb.h"

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


}  // namespace segserve::api
