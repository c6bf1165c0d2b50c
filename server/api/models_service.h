// File: server/api/models_service.h — segserve.v1.Models: listing and inspecting the model
// store, hot Load/Unload/Import, streamed ImportStream and Export. Loading, importing and
// exporting run LibTorch, so they run on the control pool, never on a gRPC thread; the call
// completes when the work is done. ImportStream's chunks are appended to a file under
// <data_dir>/incoming/ on the gRPC thread that read them (a page-cache write per chunk).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "segserve/v1/models.grpc.pb.h"
#include "server/api/access_control.h"
#include "server/common/thread_pool.h"
#include "server/registry/importer.h"
#include "server/registry/registry.h"

namespace segserve::api {

struct ModelsServiceOptions {
  // ImportStream's temporary files; created (and emptied of a crash's left-overs) by the
  // constructor. Empty: ImportStream answers FAILED_PRECONDITION.
  std::string incoming_dir;
  int64_t max_model_bytes = 1ll << 30;  // ImportStream's file limit
  // Runs (may be empty) after the store changed (import, delete), e.g. to refresh the
  // disk usage gauges.
  std::function<void()> on_change;
};

class ModelsService final : public v1::Models::CallbackService {
 public:
  ModelsService(registry::ModelRegistry& registry, common::ThreadPool& control_pool,
                AccessControl& access, ModelsServiceOptions options = {});

  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const v1::ListModelsRequest* request,
                                 v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const v1::GetModelRequest* request,
                                v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* Load(grpc::CallbackServerContext* context,
                                 const v1::LoadModelRequest* request,
                                 v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* Unload(grpc::CallbackServerContext* context,
                                   const v1::UnloadModelRequest* request,
                                   v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* Import(grpc::CallbackServerContext* context,
                                   const v1::ImportModelRequest* request,
                                   v1::ModelInfo* response) override;
  grpc::ServerReadReactor<v1::ImportModelChunk>* ImportStream(
      grpc::CallbackServerContext* context, v1::ModelInfo* response) override;
  grpc::ServerWriteReactor<v1::ExportModelChunk>* Export(
      grpc::CallbackServerContext* context, const v1::ExportModelRequest* request) override;
  grpc::ServerUnaryReactor* SetAlias(grpc::CallbackServerContext* context,
                                     const v1::SetAliasRequest* request,
                                     v1::SetAliasResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteModelRequest* request,
                                   v1::DeleteModelResponse* response) override;

 private:
  // Runs `work` on the control pool and finishes `reactor` with its status.
  void RunOnControlPool(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                        std::function<absl::Status()> work);
  // Imports `request` (blocking: control pool) and describes the new version, loading it
  // first when `load`.
  absl::Status ImportAndDescribe(const registry::ImportRequest& request, bool load,
                                 v1::ModelInfo* response);

  registry::ModelRegistry& registry_;
  common::ThreadPool& control_pool_;
  AccessControl& access_;
  const ModelsServiceOptions options_;
};

}  // namespace segserve::api
