// PostgresJobStore-only behaviour on the binary's real PostgreSQL: migrations (concurrent
// first start, a schema newer than the binary), connection strings (no passwords), timeouts,
// and a database restart. The JobStore contract is in job_store_test.cc (both backends).
#include "server/scheduler/postgres_job_store.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/postgres/conninfo.h"
#include "tests/scheduler/test_util.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/tcp_proxy.h"

namespace segserve::scheduler {
namespace {

using testing::Backend;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::StoreFactory;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

class PostgresJobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(factory_.available().ok()) << factory_.available(); }

  postgres::ConnectOptions Options() const {
    postgres::ConnectOptions options;
    options.conninfo = factory_.conninfo();
    return options;
  }
  // A plain connection to the test database, for looking behind the store's back.
  std::unique_ptr<postgres::Connection> Admin() {
    auto admin = postgres::Connection::Open(Options());
    EXPECT_TRUE(admin.ok()) << admin.status();
    return admin.ok() ? std::move(*admin) : nullptr;
  }

  StoreFactory factory_{Backend::kPostgres};
};

TEST_F(PostgresJobStoreTest, TenStoresOpeningAnEmptyDatabaseAtOnceMigrateOnce) {
  constexpr int kReplicas = 10;
  std::vector<absl::Status> results(kReplicas);
  std::vector<std::thread> threads;
  for (int i = 0; i < kReplicas; ++i) {
    threads.emplace_back([&, i] { results[i] = PostgresJobStore::Open(Options()).status(); });
  }
  for (auto& t : threads) t.join();
  for (const absl::Status& status : results) EXPECT_TRUE(status.ok()) << status;
  auto admin = Admin();
  ASSERT_NE(admin, nullptr);
  auto rows = admin->ExecSql(
      "SELECT version, name FROM schema_version WHERE component = 'jobs' ORDER BY version");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->rows(), static_cast<int>(PostgresJobStore::Migrations().size()));
  EXPECT_EQ(rows->Text(0, 1), "0001_jobs.sql");
  auto version = postgres::SchemaVersion(*admin, "jobs");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, PostgresJobStore::Migrations().back().version);
}

TEST_F(PostgresJobStoreTest, SchemaNewerThanTheBinaryIsRefusedNamingBothVersions) {
  ASSERT_TRUE(PostgresJobStore::Open(Options()).ok());
  auto admin = Admin();
  ASSERT_NE(admin, nullptr);
  ASSERT_TRUE(admin
                  ->ExecSql("INSERT INTO schema_version (component, version, name) "
                            "VALUES ('jobs', 9, '0009_future.sql')")
                  .ok());
  auto store = PostgresJobStore::Open(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(store.status()), HasSubstr("schema version 9"));
  EXPECT_THAT(Message(store.status()),
              HasSubstr("this segserve binary knows (" +
                        std::to_string(PostgresJobStore::Migrations().back().version) + ")"));
  // Nothing was changed: the row is still there, and no newer migration ran.
  EXPECT_EQ(*postgres::SchemaVersion(*admin, "jobs"), 9);
}

TEST_F(PostgresJobStoreTest, PasswordInTheConnectionStringIsRefusedWithoutEchoingIt) {
  for (const std::string conninfo :
       {"postgresql://segserve:s3cret-pw@db.example/jobs", "host=db user=u password=s3cret-pw",
        "postgres://db/jobs?password=s3cret-pw"}) {
    absl::Status valid = postgres::ValidateConnInfo(conninfo);
    EXPECT_EQ(valid.code(), absl::StatusCode::kInvalidArgument) << conninfo;
    EXPECT_THAT(Message(valid), HasSubstr("--database_password_file"));
    EXPECT_THAT(Message(valid), Not(HasSubstr("s3cret")));
    postgres::ConnectOptions options;
    options.conninfo = conninfo;
    EXPECT_EQ(PostgresJobStore::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(postgres::ValidateConnInfo("postgresql://segserve@db.example:5433/jobs").ok());
  EXPECT_EQ(postgres::DescribeConnInfo("postgresql://segserve@db.example:5433/jobs"),
            "host=db.example port=5433 dbname=jobs user=segserve");
  EXPECT_EQ(postgres::ValidateConnInfo("not a conninfo").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PostgresJobStoreTest, UnreachableDatabaseIsUnavailableNamingItButNotThePassword) {
  postgres::ConnectOptions options;
  options.conninfo = "host=/nonexistent-socket-dir dbname=jobs user=segserve";
  options.password = "s3cret-pw";
  const auto start = std::chrono::steady_clock::now();
  auto store = PostgresJobStore::Open(options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Message(store.status()), HasSubstr("job database host=/nonexistent-socket-dir"));
  EXPECT_THAT(Message(store.status()), Not(HasSubstr("s3cret")));
}

TEST_F(PostgresJobStoreTest, LockedTableTimesOutAsUnavailableInsteadOfHanging) {
  postgres::ConnectOptions options = Options();
  options.statement_timeout = std::chrono::milliseconds(300);
  auto store = PostgresJobStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  auto admin = Admin();
  ASSERT_NE(admin, nullptr);
  ASSERT_TRUE(admin->Begin().ok());
  ASSERT_TRUE(admin->ExecSql("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE").ok());
  const auto start = std::chrono::steady_clock::now();
  auto listed = (*store)->List({});
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kUnavailable) << listed.status();
  EXPECT_LT(waited, std::chrono::seconds(3));
  admin->Rollback();
  EXPECT_TRUE((*store)->List({}).ok());  // The connection is still usable.
}

TEST_F(PostgresJobStoreTest, DatabaseRestartIsUnavailableMeanwhileThenRecoversOnItsOwn) {
  auto server = segserve::testing::SharedPostgresServer();
  ASSERT_TRUE(server.ok());
  postgres::ConnectOptions options = Options();
  options.reconnect_backoff = std::chrono::milliseconds(0);
  auto store = PostgresJobStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  Job job;
  job.id = "job-survives";
  ASSERT_TRUE((*store)->Insert({job}).ok());

  // A restart between two calls: the next call reconnects by itself.
  ASSERT_TRUE((*server)->StopServer().ok());
  ASSERT_TRUE((*server)->StartServer().ok());
  auto got = (*store)->Get("job-survives");
  EXPECT_TRUE(got.ok()) << got.status();

  // While the database is down: Unavailable naming it, at once.
  ASSERT_TRUE((*server)->StopServer().ok());
  const auto start = std::chrono::steady_clock::now();
  got = (*store)->Get("job-survives");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
  EXPECT_THAT(Message(got.status()), HasSubstr("job database host="));
  EXPECT_EQ((*store)->Insert({Job{}}).code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE((*server)->StartServer().ok());
  got = (*store)->Get("job-survives");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state, JobState::kQueued);
}

// A path that acknowledges but never answers (a partition behind a proxy: the proxy's
// kernel acknowledges, so neither TCP's user timeout nor the server's statement_timeout ends
// the call): the call is given up on the client side after the statement timeout plus
// Connection::kCallMargin, answers Unavailable saying so, and once the path heals the
// next call reconnects and works.
TEST_F(PostgresJobStoreTest, ACallOnAPathThatNeverAnswersIsGivenUpAndTheConnectionRecovers) {
  auto server = ::segserve::testing::SharedPostgresServer();
  ASSERT_TRUE(server.ok()) << server.status();
  auto database = (*server)->CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status();
  auto proxy = ::segserve::testing::TcpProxy::Start((*server)->socket_dir() + "/.s.PGSQL.5432");
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  postgres::ConnectOptions options;
  options.conninfo =
      absl::StrCat("host=127.0.0.1 port=", (*proxy)->port(), " user=segserve dbname=", *database);
  options.what = "test database";
  options.statement_timeout = std::chrono::milliseconds(200);
  auto connection = postgres::Connection::Open(options);
  ASSERT_TRUE(connection.ok()) << connection.status();
  const postgres::Statement kSelect{"test_select_one", "SELECT 1"};
  ASSERT_TRUE((*connection)->Exec(kSelect).ok());

  (*proxy)->Partition();
  const auto start = std::chrono::steady_clock::now();
  auto cut = (*connection)->ExecSql("SELECT 2");
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kUnavailable) << cut.status();
  EXPECT_THAT(Message(cut.status()), HasSubstr("no answer within 5200 ms"));
  EXPECT_GE(took, std::chrono::milliseconds(5200));
  EXPECT_LT(took, std::chrono::milliseconds(9000));

  (*proxy)->Heal();
  auto healed = (*connection)->Exec(kSelect);
  ASSERT_TRUE(healed.ok()) << healed.status();
  EXPECT_EQ(healed->Int(0, 0), 1);
}

}  // namespace
}  // namespace segserve::scheduler
