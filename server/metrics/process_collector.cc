#include "server/metrics/process_collector.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace segserve::metrics {
namespace {

prometheus::MetricFamily Gauge(const std::string& name, const std::string& help, double value,
                               prometheus::MetricType type = prometheus::MetricType::Gauge) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(metric);
  return family;
}

int CountOpenFds() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (readdir(dir) != nullptr) ++count;
    closedir(dir);
    count -= 3;  // ".", ".." and the directory's own fd.
  }
  return count;
}

double BootTimeSeconds() {
  std::ifstream stat("/proc/stat");
  std::string key;
  double value = 0;
  while (stat >> key) {
    if (key == "btime") {
      stat >> value;
      return value;
    }
    stat.ignore(1 << 16, '\n');
  }
  return 0;
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  std::ifstream stat_file("/proc/self/stat");
  std::string stat_line;
  std::getline(stat_file, stat_line);
  // Fields after the parenthesised command name; see proc(5).
  const auto close_paren = stat_line.rfind(')');
  if (close_paren == std::string::npos) return families;
  std::istringstream fields(stat_line.substr(close_paren + 2));
  std::string field;
  std::vector<std::string> values;
  while (fields >> field) values.push_back(field);
  // values[0] is field 3 (state); utime=14, stime=15, num_threads=20, starttime=22, rss=24.
  if (values.size() < 22) return families;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  const double cpu = (std::stod(values[11]) + std::stod(values[12])) / ticks;
  families.push_back(Gauge("process_cpu_seconds_total", "Total user and system CPU time in seconds.",
                           cpu, prometheus::MetricType::Counter));
  families.push_back(Gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                           std::stod(values[21]) * page));
  families.push_back(Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                           std::stod(values[20])));
  families.push_back(
      Gauge("process_threads", "Number of OS threads in the process.", std::stod(values[17])));
  families.push_back(Gauge("process_start_time_seconds",
                           "Start time of the process since the Unix epoch in seconds.",
                           BootTimeSeconds() + std::stod(values[19]) / ticks));
  families.push_back(
      Gauge("process_open_fds", "Number of open file descriptors.", CountOpenFds()));
  return families;
}

}  // namespace segserve::metrics
