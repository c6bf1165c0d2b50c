// File: server/api/susceptibility_service.h — segserve.v1.Susceptibility: per-layer
// Hellinger analysis of served models on two image sets, synchronously for small inline
// or data-set inputs (Analyze: decoding and the analysis driver on the analysis pool, forward
// passes through the serving core) or as an ANALYSIS job (SubmitAnalysis).
#pragma once

#include <string>

#include "segserve/v1/susceptibility.grpc.pb.h"
#include "server/api/access_control.h"
#include "server/common/thread_pool.h"
#include "server/registry/registry.h"
#include "server/scheduler/scheduler.h"
#include "server/susceptibility/analyze_datasets.h"
#include "server/susceptibility/analyzer.h"

namespace segserve::data {
class DatasetIndex;
}  // namespace segserve::data

namespace segserve::api {

struct SusceptibilityServiceOptions {
  std::string data_dir;
  // The server's data-set index (may be null: folders under data_dir/datasets): Analyze
  // opens data sets through its LocalDir (fetching those whose files are in the database),
  // SubmitAnalysis checks them against it. Not owned.
  data::DatasetIndex* datasets = nullptr;
  int max_analyze_images = 256;  // per set, for the unary Analyze
  int64_t max_image_pixels = 4096ll * 4096;
  // Where Analyze's forward passes run (production: the batching scheduler, background
  // priority); empty: on the analysis pool thread.
  susceptibility::TapMeansFn forward;
};

class SusceptibilityService final : public v1::Susceptibility::CallbackService {
 public:
  // Analyze runs on `analysis_pool`; SubmitAnalysis resolves its data-set paths and
  // commits the job on `store_pool` (a full pool answers RESOURCE_EXHAUSTED).
  SusceptibilityService(SusceptibilityServiceOptions options, registry::ModelRegistry& registry,
                        scheduler::Scheduler& scheduler, common::ThreadPool& analysis_pool,
                        common::ThreadPool& store_pool, AccessControl& access);

  grpc::ServerUnaryReactor* Analyze(grpc::CallbackServerContext* context,
                                    const v1::AnalyzeRequest* request,
                                    v1::SusceptibilityReport* response) override;
  grpc::ServerUnaryReactor* SubmitAnalysis(grpc::CallbackServerContext* context,
                                           const v1::AnalyzeRequest* request,
                                           v1::AnalysisJob* response) override;

 private:
  // The channel count of data set `name` (0: its manifest cannot be read); InvalidArgument
  // or NotFound naming `field` for a name outside datasets/ or a set the index lacks.
  absl::StatusOr<int> DatasetChannels(const std::string& name, const std::string& field) const;
  const SusceptibilityServiceOptions options_;
  registry::ModelRegistry& registry_;
  scheduler::Scheduler& scheduler_;
  common::ThreadPool& analysis_pool_;
  common::ThreadPool& store_pool_;
  AccessControl& access_;
};

// Reports (one per model) into the response message.
void ReportsToProto(const std::vector<susceptibility::SusceptibilityReport>& reports,
                    v1::SusceptibilityReport* out);

}  // namespace segserve::api
