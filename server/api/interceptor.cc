#include "server/api/interceptor.h"

#include <chrono>
#include <string>

#include "server/api/request_id.h"
#include "server/api/status_mapping.h"
#include "server/common/log.h"

namespace segserve::api {
namespace {

using grpc::experimental::InterceptionHookPoints;

bool IsUsableRequestId(const grpc::string_ref& id) {
  if (id.size() == 0 || id.size() > 128) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

class RequestInterceptor : public grpc::experimental::Interceptor {
 public:
  RequestInterceptor(grpc::experimental::ServerRpcInfo* info, metrics::Metrics& metrics,
                     std::atomic<int64_t>* inflight)
      : method_(info->method()),
        metrics_(metrics),
        inflight_(inflight),
        start_(std::chrono::steady_clock::now()) {
    if (inflight_ != nullptr) inflight_->fetch_add(1);
  }
  // gRPC destroys a call's interceptors when the call is over.
  ~RequestInterceptor() override {
    if (inflight_ != nullptr) inflight_->fetch_sub(1);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      auto* received = methods->GetRecvInitialMetadata();
      auto it = received->find(kRequestIdHeader);
      if (it != received->end() && IsUsableRequestId(it->second)) {
        request_id_.assign(it->second.data(), it->second.size());
      } else {
        if (it != received->end()) received->erase(it);
        request_id_ = NewRequestId();
        // string_refs into members: this interceptor lives as long as the call.
        received->emplace(grpc::string_ref(kRequestIdHeader), grpc::string_ref(request_id_));
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      if (!request_id_.empty()) {
        methods->GetSendInitialMetadata()->emplace(kRequestIdHeader, request_id_);
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      const char* code = GrpcCodeName(status.error_code());
      metrics_.RecordRpc(method_, code, seconds);
      LOG(DEBUG) << "rpc " << method_ << " id=" << request_id_ << " code=" << code
                 << " seconds=" << seconds
                 << (status.ok() ? "" : " message=" + status.error_message());
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  metrics::Metrics& metrics_;
  std::atomic<int64_t>* inflight_;
  const std::chrono::steady_clock::time_point start_;
  std::string request_id_;
};

}  // namespace

grpc::experimental::Interceptor* RequestInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RequestInterceptor(info, metrics_, inflight_);
}

}  // namespace segserve::api
