// SegserveServer's bearer-token authentication: the token file, the auth metrics and the
// access control every service checks; SIGHUP's reload. Split from server.cc.
#include "absl/strings/match.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "server/app/server.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"

namespace segserve::app {

absl::Status SegserveServer::BuildAccessControl() {
  auth_reloads_ = &prometheus::BuildCounter()
                       .Name("segserve_auth_reloads_total")
                       .Help("Re-reads of --auth_tokens_file (SIGHUP), by result")
                       .Register(*metrics_.registry());
  for (const char* result : {"ok", "error"}) auth_reloads_->Add({{"result", result}});
  auth_tokens_ = &prometheus::BuildGauge()
                      .Name("segserve_auth_tokens")
                      .Help("Tokens in force (0 with --auth_disabled)")
                      .Register(*metrics_.registry())
                      .Add({});
  if (!options_.auth_disabled) {
    ASSIGN_OR_RETURN(authenticator_, auth::TokenAuthenticator::FromFile(options_.auth_tokens_file));
    auth_tokens_->Set(static_cast<double>(authenticator_->size()));
    LOG(INFO) << "auth: " << authenticator_->size() << " token(s) from "
              << options_.auth_tokens_file;
    if (options_.tls_cert.empty()) {
      LOG(WARNING) << "auth: bearer tokens travel in plaintext without --tls_cert; use TLS "
                      "unless every client is on loopback or a trusted network";
    }
  } else {
    const bool loopback = absl::StartsWith(options_.listen_address, "127.") ||
                          absl::StartsWith(options_.listen_address, "localhost:") ||
                          absl::StartsWith(options_.listen_address, "[::1]:");
    LOG(WARNING) << "auth: disabled (--auth_disabled): every caller may do everything"
                 << (loopback ? ""
                              : "; and --listen is not loopback: anyone who can reach "
                                "the port can train, import and delete models");
  }
  api::AccessControlOptions access_options;
  access_options.max_streams_per_client = options_.max_streams_per_client;
  access_ = std::make_unique<api::AccessControl>(access_options, authenticator_.get(), metrics_);
  return absl::OkStatus();
}

absl::Status SegserveServer::ReloadAuth() {
  if (authenticator_ == nullptr) {
    return absl::FailedPreconditionError("auth is disabled (--auth_disabled): nothing to reload");
  }
  absl::Status reloaded = authenticator_->Reload();
  auth_reloads_->Add({{"result", reloaded.ok() ? "ok" : "error"}}).Increment();
  if (reloaded.ok()) auth_tokens_->Set(static_cast<double>(authenticator_->size()));
  return reloaded;
}

}  // namespace segserve::app
