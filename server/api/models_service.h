// File: server/api/models_service.h — segserve.v1.Models: listing and inspecting the model
// store, and hot Load/Unload/Import. Loading and importing run LibTorch, so they run on
// the control pool, never on a gRPC thread; the call completes when the work is done.
#pragma once

#include <functional>

#include "segserve/v1/models.grpc.pb.h"
#include "server/api/access_control.h"
#include "server/common/thread_pool.h"
#include "server/registry/registry.h"

namespace segserve::api {

class ModelsService final : public v1::Models::CallbackService {
 public:
  // `on_change` (may be empty) runs after the store changed (import, delete), e.g. to
  // refresh the disk usage gauges.
  ModelsService(registry::ModelRegistry& registry, common::ThreadPool& control_pool,
                AccessControl& access, std::function<void()> on_change = nullptr);

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

  registry::ModelRegistry& registry_;
  common::ThreadPool& control_pool_;
  AccessControl& access_;
  std::function<void()> on_change_;
};

}  // namespace segserve::api
