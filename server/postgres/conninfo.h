// File: server/postgres/conninfo.h — checks a --database connection string (a
// postgresql:// URL or libpq key=value pairs) before anything connects: it must parse, and
// it must not carry a password (a command line shows in ps, shell history and logs; the
// password comes from --database_password_file or libpq's PGPASSFILE). Also the redacted
// description that logs and error messages use instead of the string itself.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace segserve::postgres {

// OK, or InvalidArgument naming the problem (parse error; a password in the string).
absl::Status ValidateConnInfo(const std::string& conninfo);

// "host=/run/pg port=5432 dbname=segserve user=segserve": the parameters an operator
// needs to recognise the database, never a password. Defaults show as "(default)".
std::string DescribeConnInfo(const std::string& conninfo);

// Reads a password file for --database_password_file: the first line, without its line
// end. InvalidArgument when unreadable or empty.
absl::StatusOr<std::string> ReadPasswordFile(const std::string& path);

}  // namespace segserve::postgres
