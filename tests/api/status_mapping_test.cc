#include "server/api/status_mapping.h"

#include "client/lib/client.h"
#include "gtest/gtest.h"

namespace segserve::api {
namespace {

TEST(StatusMapping, EveryAbslCodeMapsToTheSameGrpcCodeAndBack) {
  for (int raw = 1; raw <= 16; ++raw) {
    const auto code = static_cast<absl::StatusCode>(raw);
    const absl::Status original(code, "image.raw.height: must be 1..16384");
    const grpc::Status mapped = ToGrpcStatus(original, "req-1");
    EXPECT_EQ(static_cast<int>(mapped.error_code()), raw) << absl::StatusCodeToString(code);
    const absl::Status back = client::FromGrpcStatus(mapped);
    EXPECT_EQ(back.code(), code);
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus(), "r").ok());
  EXPECT_TRUE(client::FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(StatusMapping, ClientErrorsKeepTheirMessage) {
  const grpc::Status mapped =
      ToGrpcStatus(absl::InvalidArgumentError("image.raw.width: must be 1..16384"), "r");
  EXPECT_EQ(mapped.error_message(), "image.raw.width: must be 1..16384");
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("model 'x' not found"), "r").error_message(),
            "model 'x' not found");
}

TEST(StatusMapping, InternalDetailsAreHiddenBehindTheRequestId) {
  for (const absl::Status& fault : {absl::InternalError("segfault in /secret/path.cc"),
                                    absl::UnknownError("c10::Error at conv.cpp:12")}) {
    const grpc::Status mapped = ToGrpcStatus(fault, "abc123");
    EXPECT_EQ(mapped.error_message().find("secret"), std::string::npos);
    EXPECT_EQ(mapped.error_message().find("c10"), std::string::npos);
    EXPECT_NE(mapped.error_message().find("abc123"), std::string::npos);
  }
}

TEST(StatusMapping, CodeNamesMatchGrpcSpelling) {
  EXPECT_STREQ(GrpcCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_STREQ(GrpcCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  EXPECT_STREQ(GrpcCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
}

}  // namespace
}  // namespace segserve::api
