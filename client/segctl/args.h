// File: client/segctl/args.h — segctl's small argument parser: `--name value`,
// `--name=value`, boolean `--name`, and positionals, checked against a declared set so a
// typo is a usage error (exit 2), not a silently ignored option.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace segserve::segctl {

class Args {
 public:
  // `value_flags` take a value; `bool_flags` take none. Names without the leading "--".
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv,
                                    const std::set<std::string>& value_flags,
                                    const std::set<std::string>& bool_flags);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  // Integer and float values; InvalidArgument naming the flag when malformed.
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace segserve::segctl
