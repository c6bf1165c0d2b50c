// File: server/metrics/process_collector.h — the standard process_* metrics (CPU, RSS,
// open fds, start time, threads) read from /proc at scrape time; prometheus-cpp has none.
#pragma once

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace segserve::metrics {

class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace segserve::metrics
