// SIGKILL of a data-set generation job right after its folder is renamed into place, before
// the job completes: after the restart the job finishes (it finds its own set by the
// marker it wrote, and records it in the index) instead of failing on "already exists",
// and the set is listed once.
#include "tests/integration/fault_harness.h"

namespace segserve::fault {
namespace {

constexpr std::chrono::milliseconds kEventTimeout(120000);

TEST_F(FaultTest, SigkillRightAfterAGeneratedSetIsPublishedFinishesTheJobOnRestart) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto watch = DirWatch::Create(data_dir_ + "/datasets");
  ASSERT_TRUE(watch.ok()) << watch.status();
  v1::Job job;
  grpc::Status status = Generate("published", 8, &job);
  ASSERT_TRUE(status.ok()) << StatusText(status);
  ASSERT_TRUE((*watch)->WaitFor("published", /*renamed=*/true, kEventTimeout).ok());
  ASSERT_NO_FATAL_FAILURE(Kill());

  ASSERT_NO_FATAL_FAILURE(StartServer());
  const v1::Job done = WaitTerminal(job.job_id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  EXPECT_EQ(done.restarts(), 1) << "the kill landed after the job completed";
  v1::ListDatasetsResponse listed;
  ASSERT_TRUE(ListDatasets(&listed).ok());
  int found = 0;
  for (const v1::DatasetInfo& info : listed.datasets()) {
    if (info.name() != "published") continue;
    ++found;
    EXPECT_EQ(info.images(), 8);
  }
  EXPECT_EQ(found, 1);
}

}  // namespace
}  // namespace segserve::fault
