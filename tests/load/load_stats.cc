#include "tests/load/load_stats.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace segserve::load {

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kSegment:
      return "segment";
    case Kind::kStream:
      return "stream";
    case Kind::kStreamItem:
      return "stream_item";
    case Kind::kList:
      return "list";
    case Kind::kWatch:
      return "watch";
    case Kind::kGenerate:
      return "generate";
  }
  return "?";
}

const char* CodeName(int code) {
  // absl::StatusCode uses gRPC's numbering; the string outlives the call (static storage
  // for every known code; unknown ones say so).
  static const std::array<std::string, 17> names = [] {
    std::array<std::string, 17> all;
    for (int c = 0; c < 17; ++c) {
      all[c] = absl::StatusCodeToString(static_cast<absl::StatusCode>(c));
    }
    return all;
  }();
  return code >= 0 && code < 17 ? names[code].c_str() : "UNKNOWN_CODE";
}

void Recorder::Record(Kind kind, grpc::StatusCode code, double latency_ms) {
  PerKind& k = kinds_[static_cast<int>(kind)];
  ++k.calls;
  ++k.codes[static_cast<int>(code)];
  (code == grpc::StatusCode::OK ? k.ok_ms : k.error_ms).push_back(latency_ms);
}

void Recorder::RecordClientCancel(Kind kind, double latency_ms) {
  PerKind& k = kinds_[static_cast<int>(kind)];
  ++k.calls;
  ++k.client_cancels;
}

void Recorder::Merge(const Recorder& other) {
  for (int i = 0; i < kKinds; ++i) {
    PerKind& to = kinds_[i];
    const PerKind& from = other.kinds_[i];
    to.calls += from.calls;
    to.client_cancels += from.client_cancels;
    for (const auto& [code, n] : from.codes) to.codes[code] += n;
    to.ok_ms.insert(to.ok_ms.end(), from.ok_ms.begin(), from.ok_ms.end());
    to.error_ms.insert(to.error_ms.end(), from.error_ms.begin(), from.error_ms.end());
  }
}

Percentiles Summarise(std::vector<double> values) {
  Percentiles p;
  p.n = static_cast<int64_t>(values.size());
  if (values.empty()) return p;
  std::sort(values.begin(), values.end());
  auto rank = [&](double q) {
    const size_t r = static_cast<size_t>(std::ceil(q * values.size()));
    return values[std::min(values.size() - 1, r == 0 ? 0 : r - 1)];
  };
  p.p50 = rank(0.50);
  p.p99 = rank(0.99);
  p.max = values.back();
  return p;
}

int64_t UnexpectedErrors(const Recorder& recorder, const std::vector<grpc::StatusCode>& allowed) {
  int64_t n = 0;
  for (int i = 0; i < kKinds; ++i) {
    for (const auto& [code, count] : recorder.of(static_cast<Kind>(i)).codes) {
      if (code == grpc::StatusCode::OK) continue;
      if (std::find(allowed.begin(), allowed.end(), static_cast<grpc::StatusCode>(code)) ==
          allowed.end()) {
        n += count;
      }
    }
  }
  return n;
}

namespace {

nlohmann::json PercentilesJson(const Percentiles& p) {
  auto round = [](double ms) { return std::round(ms * 1000) / 1000; };
  return {{"n", p.n}, {"p50", round(p.p50)}, {"p99", round(p.p99)}, {"max", round(p.max)}};
}

}  // namespace

nlohmann::json ToJson(const Recorder& recorder, double seconds) {
  nlohmann::json out = nlohmann::json::object();
  for (int i = 0; i < kKinds; ++i) {
    const auto& k = recorder.of(static_cast<Kind>(i));
    if (k.calls == 0) continue;
    nlohmann::json codes = nlohmann::json::object();
    for (const auto& [code, n] : k.codes) codes[CodeName(code)] = n;
    nlohmann::json entry = {
        {"calls", k.calls},
        {"per_second", seconds > 0 ? std::round(k.calls / seconds * 10) / 10 : 0},
        {"codes", codes},
        {"ok_ms", PercentilesJson(Summarise(k.ok_ms))}};
    if (k.client_cancels > 0) entry["client_cancels"] = k.client_cancels;
    if (!k.error_ms.empty()) entry["error_ms"] = PercentilesJson(Summarise(k.error_ms));
    out[KindName(static_cast<Kind>(i))] = entry;
  }
  return out;
}

std::string ToText(const Recorder& recorder, double seconds) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  out << "  " << std::left << std::setw(12) << "kind" << std::right << std::setw(9) << "calls"
      << std::setw(9) << "per s" << std::setw(10) << "p50 ms" << std::setw(10) << "p99 ms"
      << std::setw(10) << "max ms"
      << "  answers\n";
  for (int i = 0; i < kKinds; ++i) {
    const auto& k = recorder.of(static_cast<Kind>(i));
    if (k.calls == 0) continue;
    const Percentiles ok = Summarise(k.ok_ms);
    out << "  " << std::left << std::setw(12) << KindName(static_cast<Kind>(i)) << std::right
        << std::setw(9) << k.calls << std::setw(9) << (seconds > 0 ? k.calls / seconds : 0)
        << std::setw(10) << ok.p50 << std::setw(10) << ok.p99 << std::setw(10) << ok.max << " ";
    for (const auto& [code, n] : k.codes) out << " " << CodeName(code) << "=" << n;
    if (k.client_cancels > 0) out << " client_cancel=" << k.client_cancels;
    if (!k.error_ms.empty()) {
      const Percentiles e = Summarise(k.error_ms);
      out << "  (errors: p50 " << e.p50 << " p99 " << e.p99 << " max " << e.max << " ms)";
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace segserve::load
