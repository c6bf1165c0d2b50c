// File: server/api/access_control.h — who may call what, and how many streams a client may
// hold open. Every segserve.v1 handler asks Authorize() for the role its method needs
// before doing anything (gRPC 1.51's server interceptors cannot reject a call, so the
// check is a call at the top of each handler; tests/integration/auth_test.cc calls every
// method without a token to prove none is missed). Health, reflection and the Open
// Inference Protocol's ServerLive/ServerReady stay open.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server_context.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "server/auth/token_authenticator.h"
#include "server/metrics/metrics.h"

namespace segserve::api {

// The caller of one RPC: the token's identity, or (auth disabled) the peer's address with
// full rights.
struct Caller {
  std::string client;  // token name, or "peer:<ip>" with auth disabled.
  auth::Role role = auth::Role::kAdmin;
};

class AccessControl;

// One open stream counted against its client; the slot is released on destruction.
class StreamSlot {
 public:
  StreamSlot(AccessControl* owner, std::string client)
      : owner_(owner), client_(std::move(client)) {}
  ~StreamSlot();
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;

 private:
  AccessControl* owner_;
  std::string client_;
};

struct AccessControlOptions {
  int max_streams_per_client = 32;  // concurrent streaming calls (any streaming RPC)
};

class AccessControl {
 public:
  // `authenticator` null = authentication disabled (every caller is admin).
  AccessControl(const AccessControlOptions& options, const auth::TokenAuthenticator* authenticator,
                metrics::Metrics& metrics);

  // UNAUTHENTICATED without a valid token, PERMISSION_DENIED when the token's role is
  // below `needed`; each outcome is counted.
  absl::StatusOr<Caller> Authorize(const grpc::ServerContextBase& context, auth::Role needed);

  // A stream slot for `caller`, or RESOURCE_EXHAUSTED naming the limit.
  absl::StatusOr<std::unique_ptr<StreamSlot>> OpenStream(const Caller& caller);

  bool enabled() const { return authenticator_ != nullptr; }

 private:
  friend class StreamSlot;
  void CloseStream(const std::string& client);
  // Counts the refusal and logs it with the peer, at most one line a second (a guessing
  // client must not flood the log); the line says how many were not logged.
  void Refused(const grpc::ServerContextBase& context, const char* reason);

  const AccessControlOptions options_;
  const auth::TokenAuthenticator* authenticator_;
  prometheus::Family<prometheus::Counter>& failures_;
  prometheus::Family<prometheus::Counter>& allowed_;
  prometheus::Counter* allowed_by_role_[5] = {};  // [0]: auth disabled; [Role]: that role
  prometheus::Counter& stream_rejections_;
  prometheus::Gauge& open_streams_;
  absl::Mutex mu_;
  std::map<std::string, int> streams_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_refusal_log_ ABSL_GUARDED_BY(mu_);
  int64_t unlogged_refusals_ ABSL_GUARDED_BY(mu_) = 0;
};

// The IP of a gRPC peer string ("ipv4:127.0.0.1:5000" -> "127.0.0.1", "ipv6:[::1]:5000"
// -> "::1"); other forms are returned whole.
std::string PeerHost(const std::string& peer);

}  // namespace segserve::api
