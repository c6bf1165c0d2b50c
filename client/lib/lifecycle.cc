#include "client/lib/lifecycle.h"

#include <cstdio>

#include "segserve/v1/datasets.grpc.pb.h"
#include "segserve/v1/models.grpc.pb.h"
#include "segserve/v1/training.grpc.pb.h"

namespace segserve::client {

absl::StatusOr<v1::DeleteModelResponse> DeleteModel(const Client& client, const std::string& name,
                                                    int64_t version) {
  v1::DeleteModelRequest request;
  request.set_name(name);
  if (version == 0) {
    request.set_all_versions(true);
  } else {
    request.set_version(version);
  }
  v1::DeleteModelResponse response;
  auto context = client.NewContext();
  grpc::Status status =
      v1::Models::NewStub(client.channel())->Delete(context.get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::DeleteDatasetResponse> DeleteDataset(const Client& client,
                                                        const std::string& name) {
  v1::DeleteDatasetRequest request;
  request.set_name(name);
  v1::DeleteDatasetResponse response;
  auto context = client.NewContext();
  grpc::Status status =
      v1::Datasets::NewStub(client.channel())->Delete(context.get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::PurgeJobsResponse> PurgeJobs(const Client& client,
                                                std::chrono::seconds older_than) {
  v1::PurgeJobsRequest request;
  request.set_older_than_seconds(older_than.count());
  v1::PurgeJobsResponse response;
  auto context = client.NewContext();
  grpc::Status status =
      v1::Training::NewStub(client.channel())->PurgeJobs(context.get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

std::string HumanBytes(int64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof(buf), "%lld B", static_cast<long long>(bytes));
  } else {
    std::snprintf(buf, sizeof(buf), value < 10 ? "%.1f %s" : "%.0f %s", value, kUnits[unit]);
  }
  return buf;
}

}  // namespace segserve::client
