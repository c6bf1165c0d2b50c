#include "server/postgres/conninfo.h"

#include <libpq-fe.h>

#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"

namespace segserve::postgres {
namespace {

struct OptionsDeleter {
  void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};
using Options = std::unique_ptr<PQconninfoOption, OptionsDeleter>;

absl::StatusOr<Options> Parse(const std::string& conninfo) {
  char* error = nullptr;
  Options options(PQconninfoParse(conninfo.c_str(), &error));
  if (options == nullptr) {
    std::string message = error ? error : "out of memory";
    PQfreemem(error);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    // libpq's message may quote the string; it cannot hold a password we would accept, but
    // it may hold one we are about to refuse, so say only what is wrong.
    return absl::InvalidArgumentError(
        "--database: not a PostgreSQL connection string (postgresql://host/db or "
        "key=value pairs)");
  }
  return options;
}

}  // namespace

absl::Status ValidateConnInfo(const std::string& conninfo) {
  if (conninfo.empty()) return absl::InvalidArgumentError("--database: empty");
  absl::StatusOr<Options> options = Parse(conninfo);
  if (!options.ok()) return options.status();
  for (PQconninfoOption* o = options->get(); o->keyword != nullptr; ++o) {
    if (std::string(o->keyword) == "password" && o->val != nullptr && o->val[0] != '\0') {
      return absl::InvalidArgumentError(
          "--database must not contain a password (a command line is visible in ps, shell "
          "history and logs): remove it and put it in the file named by "
          "--database_password_file, or in a libpq password file (PGPASSFILE)");
    }
  }
  return absl::OkStatus();
}

std::string DescribeConnInfo(const std::string& conninfo) {
  absl::StatusOr<Options> options = Parse(conninfo);
  if (!options.ok()) return "(unparsable connection string)";
  std::string host = "(default)", port = "(default)", dbname = "(default)", user = "(default)";
  for (PQconninfoOption* o = options->get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr || o->val[0] == '\0') continue;
    const std::string keyword = o->keyword;
    if (keyword == "host" || (keyword == "hostaddr" && host == "(default)")) host = o->val;
    if (keyword == "port") port = o->val;
    if (keyword == "dbname") dbname = o->val;
    if (keyword == "user") user = o->val;
  }
  return absl::StrCat("host=", host, " port=", port, " dbname=", dbname, " user=", user);
}

absl::StatusOr<std::string> ReadPasswordFile(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return absl::InvalidArgumentError(absl::StrCat("--database_password_file: cannot read ", path));
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--database_password_file: ", path, " is empty"));
  }
  return line;
}

}  // namespace segserve::postgres
