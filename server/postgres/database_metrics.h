// File: server/postgres/database_metrics.h — Prometheus series for a PostgreSQL-backed
// store, fed by ConnectOptions' observers:
//   segserve_database_up{database}               1 while the last connect or statement
//                                                reached the server, 0 once it did not
//   segserve_database_query_seconds{database}    histogram of statement durations
//   segserve_database_errors_total{database}     statements that failed (any reason)
// `database` is ConnectOptions::what ("job database"). While it is 0, loaded models keep
// serving; job and model-management RPCs answer UNAVAILABLE naming the database.
#pragma once

#include "server/metrics/metrics.h"
#include "server/postgres/connection.h"

namespace segserve::postgres {

// Sets options.on_query / on_connection to record into `metrics` (which must outlive
// every connection made with `options`), and the up gauge to 0 until the first connect.
void InstallDatabaseMetrics(ConnectOptions& options, metrics::Metrics& metrics);

}  // namespace segserve::postgres
