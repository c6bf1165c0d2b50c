#include "server/api/access_control.h"

#include <iterator>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/common/log.h"

namespace segserve::api {

std::string PeerHost(const std::string& peer) {
  absl::string_view rest(peer);
  if (absl::ConsumePrefix(&rest, "ipv4:")) {
    return std::string(rest.substr(0, rest.rfind(':')));
  }
  if (absl::ConsumePrefix(&rest, "ipv6:") && absl::StartsWith(rest, "[")) {
    const size_t close = rest.find(']');
    if (close != absl::string_view::npos) return std::string(rest.substr(1, close - 1));
  }
  return peer;
}

StreamSlot::~StreamSlot() { owner_->CloseStream(client_); }

AccessControl::AccessControl(const AccessControlOptions& options,
                             const auth::TokenAuthenticator* authenticator,
                             metrics::Metrics& metrics)
    : options_(options),
      authenticator_(authenticator),
      failures_(prometheus::BuildCounter()
                    .Name("segserve_auth_failures_total")
                    .Help("Requests refused by authentication or authorisation, by reason "
                          "(missing_token, malformed_header, invalid_token, permission_denied)")
                    .Register(*metrics.registry())),
      allowed_(prometheus::BuildCounter()
                   .Name("segserve_auth_allowed_total")
                   .Help("Requests allowed, by the caller's role (auth disabled: role=\"none\")")
                   .Register(*metrics.registry())),
      stream_rejections_(prometheus::BuildCounter()
                             .Name("segserve_stream_limit_rejections_total")
                             .Help("Streams refused because the client already held "
                                   "--max_streams_per_client open streams")
                             .Register(*metrics.registry())
                             .Add({})),
      open_streams_(prometheus::BuildGauge()
                        .Name("segserve_open_streams")
                        .Help("SegmentStream and WatchJob streams open now")
                        .Register(*metrics.registry())
                        .Add({})) {
  // Every label value is exported from the start, so rate() works before the first event;
  // the allowed counters are looked up once here, not on every call.
  for (const char* reason :
       {"missing_token", "malformed_header", "invalid_token", "permission_denied"}) {
    failures_.Add({{"reason", reason}});
  }
  allowed_by_role_[0] = &allowed_.Add({{"role", "none"}});
  for (auth::Role role :
       {auth::Role::kViewer, auth::Role::kSegmenter, auth::Role::kTrainer, auth::Role::kAdmin}) {
    allowed_by_role_[static_cast<int>(role)] = &allowed_.Add({{"role", auth::RoleName(role)}});
  }
}

void AccessControl::Refused(const grpc::ServerContextBase& context, const char* reason) {
  failures_.Add({{"reason", reason}}).Increment();
  int64_t unlogged = 0;
  {
    absl::MutexLock lock(&mu_);
    const auto now = std::chrono::steady_clock::now();
    if (now - last_refusal_log_ < std::chrono::seconds(1)) {
      ++unlogged_refusals_;
      return;
    }
    last_refusal_log_ = now;
    unlogged = std::exchange(unlogged_refusals_, 0);
  }
  LOG(WARNING) << "auth: refused a call from " << context.peer() << " (" << reason << ")"
               << (unlogged > 0 ? absl::StrCat("; ", unlogged, " more refusals not logged")
                                : std::string());
}

absl::StatusOr<Caller> AccessControl::Authorize(const grpc::ServerContextBase& context,
                                                auth::Role needed) {
  if (authenticator_ == nullptr) {
    allowed_by_role_[0]->Increment();
    return Caller{absl::StrCat("peer:", PeerHost(context.peer())), auth::Role::kAdmin};
  }
  std::string_view header;
  const auto& metadata = context.client_metadata();
  const auto range = metadata.equal_range("authorization");
  if (range.first != range.second) {
    if (std::next(range.first) != range.second) {
      Refused(context, "malformed_header");
      return absl::UnauthenticatedError("authorization: sent more than once");
    }
    header = std::string_view(range.first->second.data(), range.first->second.size());
  }
  auth::AuthFailure failure = auth::AuthFailure::kMissing;
  absl::StatusOr<auth::Identity> identity = authenticator_->Authenticate(header, &failure);
  if (!identity.ok()) {
    Refused(context, auth::AuthFailureReason(failure));
    return identity.status();
  }
  if (!auth::Permits(identity->role, needed)) {
    Refused(context, "permission_denied");
    return absl::PermissionDeniedError(
        absl::StrCat("token '", identity->name, "' has role ", auth::RoleName(identity->role),
                     "; this method needs ", auth::RoleName(needed), " or above"));
  }
  allowed_by_role_[static_cast<int>(identity->role)]->Increment();
  return Caller{identity->name, identity->role};
}

absl::StatusOr<std::unique_ptr<StreamSlot>> AccessControl::OpenStream(const Caller& caller) {
  {
    absl::MutexLock lock(&mu_);
    int& open = streams_[caller.client];
    if (open >= options_.max_streams_per_client) {
      if (open == 0) streams_.erase(caller.client);
      stream_rejections_.Increment();
      return absl::ResourceExhaustedError(absl::StrCat(
          "max_streams_per_client=", options_.max_streams_per_client, ": client '", caller.client,
          "' already has that many streams open; close one or retry later"));
    }
    ++open;
  }
  open_streams_.Increment();
  return std::make_unique<StreamSlot>(this, caller.client);
}

void AccessControl::CloseStream(const std::string& client) {
  {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(client);
    if (it != streams_.end() && --it->second <= 0) streams_.erase(it);
  }
  open_streams_.Decrement();
}

}  // namespace segserve::api
