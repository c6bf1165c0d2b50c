// TLS and mutual TLS on the gRPC port of the real binary, with certificates made by openssl.
#include <cstdlib>

#include "client/lib/client.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string d = dir_.path();
    // A CA, a server certificate for localhost, and a client certificate, all from the CA.
    const std::string script =
        "cd " + d + " && "
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca "
        "-keyout ca.key -out ca.pem && "
        "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key "
        "-out server.csr && "
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext && "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
        "-extfile san.ext -out server.pem && "
        "openssl req -newkey rsa:2048 -nodes -subj /CN=pipeline -keyout client.key "
        "-out client.csr && "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
        "-out client.pem";
    if (std::system((script + " >/dev/null 2>&1").c_str()) != 0) {
      GTEST_SKIP() << "openssl could not make test certificates";
    }
  }

  void Start(bool mutual) {
    const std::string d = dir_.path();
    std::vector<std::string> flags = {"--tls_cert=" + d + "/server.pem",
                                      "--tls_key=" + d + "/server.key"};
    if (mutual) flags.push_back("--tls_client_ca=" + d + "/ca.pem");
    auto server = testing::ServerProcess::Start(testing::SegserveBinary(), d + "/data", flags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  absl::StatusOr<client::ServingStatus> Health(bool tls, bool client_cert) {
    client::ClientOptions options;
    options.target = "localhost:" + std::to_string(server_->grpc_port());
    options.timeout = std::chrono::seconds(5);
    if (tls) options.tls_ca = dir_.path() + "/ca.pem";
    if (client_cert) {
      options.tls_cert = dir_.path() + "/client.pem";
      options.tls_key = dir_.path() + "/client.key";
    }
    auto client = client::Client::Create(options);
    if (!client.ok()) return client.status();
    return (*client)->Health();
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
};

TEST_F(TlsTest, TlsClientsAreServedAndPlaintextClientsAreNot) {
  ASSERT_NO_FATAL_FAILURE(Start(/*mutual=*/false));
  auto status = Health(/*tls=*/true, /*client_cert=*/false);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_NE(*status, client::ServingStatus::kUnknown);
  EXPECT_EQ(Health(/*tls=*/false, false).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, MutualTlsRefusesClientsWithoutACertificate) {
  ASSERT_NO_FATAL_FAILURE(Start(/*mutual=*/true));
  EXPECT_TRUE(Health(/*tls=*/true, /*client_cert=*/true).ok());
  EXPECT_FALSE(Health(/*tls=*/true, /*client_cert=*/false).ok());
}

}  // namespace
}  // namespace segserve
