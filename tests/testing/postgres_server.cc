#include "tests/testing/postgres_server.h"

#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace segserve::testing {
namespace {

struct Output {
  int exit_code = -1;
  std::string text;
};

Output Run(const std::string& command) {
  Output out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.text.append(buffer, n);
  const int status = pclose(pipe);
  if (status != -1 && WIFEXITED(status)) out.exit_code = WEXITSTATUS(status);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  const char* bindir = getenv("SEGSERVE_PG_BINDIR");
  server->bindir_ = bindir && bindir[0] ? bindir : "/usr/lib/postgresql/15/bin";
  for (const char* tool : {"initdb", "pg_ctl", "postgres"}) {
    const std::string path = server->bindir_ + "/" + tool;
    if (access(path.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "PostgreSQL 15 server binaries not found (", path,
          "): the PostgreSQL tests need them; run scripts/install-deps.sh test (package "
          "postgresql-15), or point SEGSERVE_PG_BINDIR at another PostgreSQL's bin/"));
    }
  }
  char tmpl[] = "/tmp/segserve_pg_XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  server->dir_ = tmpl;
  server->as_root_ = geteuid() == 0;
  if (server->as_root_) {
    // initdb and postgres refuse to run as root: the Debian package's `postgres` user does.
    struct passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "running as root and there is no `postgres` user to run the test PostgreSQL: run "
          "scripts/install-deps.sh test (package postgresql-15 creates it)");
    }
    if (chown(server->dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError("chown " + server->dir_ + " failed");
    }
  }

  // The watchdog: stops the server and removes the dir once the pipe's write end (held
  // only by this process: O_CLOEXEC) closes.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
  const std::string stop =
      absl::StrCat(server->as_root_ ? "runuser -u postgres -- " : "", server->bindir_,
                   "/pg_ctl -D ", server->dir_, "/data -m immediate -w stop >/dev/null 2>&1");
  const std::string script =
      absl::StrCat("cat >/dev/null; [ -f ", server->dir_, "/data/postmaster.pid ] && ", stop,
                   "; rm -rf ", server->dir_);
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(fds[0], 0);
    execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[0]);
  server->watchdog_fd_ = fds[1];
  server->watchdog_pid_ = pid;

  absl::Status status = server->RunAsPostgres(
      absl::StrCat("/initdb -D ", server->dir_, "/data -A trust -U segserve -E UTF8 ",
                   "--locale=C --no-sync"),
      "initdb");
  if (!status.ok()) return status;
  status = server->StartServer();
  if (!status.ok()) return status;
  postgres::ConnectOptions options;
  options.conninfo = server->ConnInfo("postgres");
  options.what = "test PostgreSQL";
  absl::StatusOr<std::unique_ptr<postgres::Connection>> admin = postgres::Connection::Open(options);
  if (!admin.ok()) return admin.status();
  server->admin_ = std::move(*admin);
  return server;
}

PostgresServer::~PostgresServer() {
  admin_.reset();
  if (watchdog_fd_ >= 0) close(watchdog_fd_);
  if (watchdog_pid_ > 0) waitpid(watchdog_pid_, nullptr, 0);
}

absl::Status PostgresServer::RunAsPostgres(const std::string& args, const std::string& what) {
  const std::string command =
      absl::StrCat(as_root_ ? "runuser -u postgres -- " : "", bindir_, args);
  Output out = Run(command);
  if (out.exit_code != 0) {
    return absl::InternalError(absl::StrCat("test PostgreSQL: ", what, " failed (exit ",
                                            out.exit_code, "): ", command, "\n", out.text));
  }
  return absl::OkStatus();
}

std::string PostgresServer::ConnInfo(const std::string& dbname) const {
  return absl::StrCat("host=", dir_, " user=segserve dbname=", dbname);
}

absl::Status PostgresServer::StartServer() {
  // Durability of the test database against an OS crash is not under test: fsync off.
  return RunAsPostgres(
      absl::StrCat("/pg_ctl -D ", dir_, "/data -l ", dir_, "/log -w -t 30 -o \"-k ", dir_,
                   " -c listen_addresses='' -c fsync=off -c full_page_writes=off ",
                   "-c shared_buffers=16MB -c max_connections=60\" start"),
      "pg_ctl start");
}

absl::Status PostgresServer::StopServer() {
  return RunAsPostgres(absl::StrCat("/pg_ctl -D ", dir_, "/data -m fast -w stop"), "pg_ctl stop");
}

absl::StatusOr<std::string> PostgresServer::CreateDatabase() {
  const std::string name = absl::StrCat("test_", getpid(), "_", ++databases_);
  absl::Status created = admin_->Exec({"harness_noop", "SELECT 1"}).status();
  if (created.ok()) created = admin_->ExecSql("CREATE DATABASE " + name).status();
  if (!created.ok()) return created;
  return name;
}

absl::StatusOr<PostgresServer*> SharedPostgresServer() {
  static auto* const server =
      new absl::StatusOr<std::unique_ptr<PostgresServer>>(PostgresServer::Start());
  // Stopped at exit: the watchdog sees the pipe close when this process ends.
  if (!server->ok()) return server->status();
  return server->value().get();
}

absl::StatusOr<std::string> NewSharedDatabase() {
  absl::StatusOr<PostgresServer*> server = SharedPostgresServer();
  if (!server.ok()) return server.status();
  absl::StatusOr<std::string> database = (*server)->CreateDatabase();
  if (!database.ok()) return database.status();
  return (*server)->ConnInfo(*database);
}

}  // namespace segserve::testing
