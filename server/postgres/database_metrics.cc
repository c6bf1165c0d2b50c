#include "server/postgres/database_metrics.h"

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace segserve::postgres {

void InstallDatabaseMetrics(ConnectOptions& options, metrics::Metrics& metrics) {
  prometheus::Registry& registry = *metrics.registry();
  const std::map<std::string, std::string> labels = {{"database", options.what}};
  prometheus::Gauge* up = &prometheus::BuildGauge()
                               .Name("segserve_database_up")
                               .Help("1 while the PostgreSQL database answers (last connect or "
                                     "statement reached it), 0 once it did not.")
                               .Register(registry)
                               .Add(labels);
  prometheus::Histogram* seconds =
      &prometheus::BuildHistogram()
           .Name("segserve_database_query_seconds")
           .Help("Duration of PostgreSQL statements, reconnects included.")
           .Register(registry)
           .Add(labels, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005,
                                                                0.01, 0.025, 0.05, 0.1, 0.25,
                                                                0.5, 1, 2.5, 5, 10});
  prometheus::Counter* errors = &prometheus::BuildCounter()
                                     .Name("segserve_database_errors_total")
                                     .Help("PostgreSQL statements that failed.")
                                     .Register(registry)
                                     .Add(labels);
  up->Set(0);
  options.on_query = [up, seconds, errors](std::chrono::steady_clock::duration elapsed,
                                           const absl::Status& status) {
    seconds->Observe(std::chrono::duration<double>(elapsed).count());
    if (!status.ok()) errors->Increment();
    // A statement that failed for its own reasons (a constraint, a fence) still reached
    // the server; only Unavailable says it is gone.
    up->Set(status.code() == absl::StatusCode::kUnavailable ? 0 : 1);
  };
  options.on_connection = [up](bool reachable) { up->Set(reachable ? 1 : 0); };
}

}  // namespace segserve::postgres
