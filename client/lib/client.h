// File: client/lib/client.h — the typed C++ client for segserve.v1: one channel, a
// deadline on every call, gRPC statuses turned into absl statuses with readable text.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace segserve::client {

struct ClientOptions {
  std::string target = "localhost:50051";  // host:port of segserve.
  std::chrono::milliseconds timeout{30000};  // deadline of each unary call.
  std::string token;       // bearer token sent as `authorization: Bearer <token>`.
  std::string tls_ca;      // PEM file of the CA to trust; enables TLS when set.
  std::string tls_cert;    // client certificate PEM (mutual TLS).
  std::string tls_key;     // client key PEM (mutual TLS).
  int64_t max_message_bytes = 64ll << 20;
  // A connection of this channel's own: gRPC otherwise shares one TCP connection among
  // channels to the same target with the same arguments (load tests want one per client).
  bool dedicated_connection = false;
};

// grpc::Status -> absl::Status with the same code and message.
absl::Status FromGrpcStatus(const grpc::Status& status);

enum class ServingStatus { kUnknown, kServing, kNotServing, kServiceUnknown };
const char* ServingStatusName(ServingStatus status);

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Create(const ClientOptions& options);

  // grpc.health.v1.Health/Check for `service` ("" = the whole server).
  absl::StatusOr<ServingStatus> Health(const std::string& service = "");

  // A context with the deadline and credentials of these options; for RPCs the typed
  // wrappers do not cover yet (use with the stubs in segserve/v1/*.grpc.pb.h).
  std::unique_ptr<grpc::ClientContext> NewContext() const;
  std::unique_ptr<grpc::ClientContext> NewStreamContext() const;  // no deadline.
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const ClientOptions& options() const { return options_; }

 private:
  Client(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel)
      : options_(options), channel_(std::move(channel)) {}
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace segserve::client
