// The data-dir gauges (issue 19) follow files as they are written and deleted.
#include "server/lifecycle/disk_usage.h"

#include "server/common/dir_util.h"
#include "tests/lifecycle/fixture.h"

namespace segserve::lifecycle {
namespace {

using scheduler::testing::MetricValue;

TEST(DiskUsageTest, GaugesMoveAsFilesAreWrittenAndDeleted) {
  scheduler::testing::TempDir dir;
  metrics::Metrics metrics;
  DiskUsageMonitor monitor(dir.path(), std::chrono::hours(1), metrics);
  auto bytes = [&](const char* kind) {
    return MetricValue(metrics, "segserve_data_dir_bytes", {{"kind", kind}});
  };
  DiskUsage usage = monitor.Refresh();
  EXPECT_EQ(bytes("models"), 0);
  EXPECT_GT(MetricValue(metrics, "segserve_data_dir_free_bytes"), 0);
  EXPECT_GE(MetricValue(metrics, "segserve_data_dir_capacity_bytes"),
            MetricValue(metrics, "segserve_data_dir_free_bytes"));

  testing::WriteBytes(dir.path() + "/models/m/1/model.ckpt", 3000);
  testing::WriteBytes(dir.path() + "/datasets/d/a.png", 200);
  testing::WriteBytes(dir.path() + "/runs/job-1/latest.ckpt", 50);
  testing::WriteBytes(dir.path() + "/jobs.db", 4096);
  testing::WriteBytes(dir.path() + "/jobs.db-wal", 100);
  usage = monitor.Refresh();
  EXPECT_EQ(bytes("models"), 3000);
  EXPECT_EQ(bytes("datasets"), 200);
  EXPECT_EQ(bytes("runs"), 50);
  EXPECT_EQ(bytes("jobs_db"), 4196);
  EXPECT_EQ(usage.models, 3000);

  ASSERT_TRUE(common::RemoveDirectoryDurably(dir.path() + "/models/m/1").ok());
  monitor.Refresh();
  EXPECT_EQ(bytes("models"), 0);
  EXPECT_EQ(bytes("datasets"), 200);
}

TEST(DiskUsageTest, TheBackgroundThreadStartsWithAMeasurementAndStops) {
  scheduler::testing::TempDir dir;
  metrics::Metrics metrics;
  testing::WriteBytes(dir.path() + "/runs/job-1/latest.ckpt", 70);
  DiskUsageMonitor monitor(dir.path(), std::chrono::hours(1), metrics);
  monitor.Start();
  EXPECT_EQ(MetricValue(metrics, "segserve_data_dir_bytes", {{"kind", "runs"}}), 70);
  monitor.Stop();  // returns at once although the interval is an hour
}

}  // namespace
}  // namespace segserve::lifecycle
