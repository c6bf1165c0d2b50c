// SIGKILL during Models.Delete (issue 19): whatever the moment, after a restart the version
// is whole (listed, same checkpoint bytes, loads and serves) or gone (not listed, no
// directory), never half, and no tombstone is left. Kills land when the tombstone rename is
// seen (inotify) and at fractions of an undisturbed delete's duration.
#include <future>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/lib/lifecycle.h"
#include "tests/integration/fault_harness.h"
#include "tests/testing/model_fixture.h"

namespace segserve::fault {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kEventTimeout(120000);

TEST_F(FaultTest, SigkillDuringADeleteLeavesTheVersionWholeOrGone) {
  auto state_dict = testing::TestModelStateDict(SmallConfig(), 21);
  ASSERT_TRUE(state_dict.ok()) << state_dict.status();
  const std::string model_dir = ModelsDir() + "/del";
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::ModelInfo keep;  // version 1 stays throughout: the store around a delete is untouched
  ASSERT_TRUE(Import("del", *state_dict, false, &keep).ok());

  // An undisturbed delete of a loaded version, timed.
  v1::ModelInfo info;
  ASSERT_TRUE(Import("del", *state_dict, true, &info).ok());
  auto t0 = Clock::now();
  auto deleted = client::DeleteModel(*client_, "del", info.version());
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  const Clock::duration undisturbed = Clock::now() - t0;

  struct KillPoint {
    bool at_tombstone;
    double fraction;  // of the undisturbed delete, after sending it
  };
  const std::vector<KillPoint> kills = {{true, 0},     {false, 0},   {false, 0.25}, {false, 0.5},
                                        {false, 0.75}, {false, 1.0}, {true, 0},     {false, 0.1}};
  int whole = 0, gone = 0, acknowledged = 0;
  std::string outcomes;
  for (size_t i = 0; i < kills.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("kill ", i));
    ASSERT_TRUE(Import("del", *state_dict, true, &info).ok());
    const int64_t version = info.version();
    const std::string version_dir = absl::StrCat(model_dir, "/", version);
    const std::string digest = FileDigest(version_dir + "/model.ckpt");
    ASSERT_FALSE(digest.empty());
    auto watch = DirWatch::Create(model_dir);
    ASSERT_TRUE(watch.ok()) << watch.status();
    const auto sent = Clock::now();
    auto call = std::async(std::launch::async,
                           [&] { return client::DeleteModel(*client_, "del", version); });
    if (kills[i].at_tombstone) {
      ASSERT_TRUE((*watch)->WaitFor(".deleted-", true, kEventTimeout).ok());
    } else {
      std::this_thread::sleep_until(
          sent + std::chrono::duration_cast<Clock::duration>(undisturbed * kills[i].fraction));
    }
    ASSERT_NO_FATAL_FAILURE(Kill());
    const bool acked = call.get().ok();
    acknowledged += acked;

    ASSERT_NO_FATAL_FAILURE(StartServer());
    EXPECT_TRUE(EntriesWithPrefix(model_dir, ".deleted-").empty()) << "tombstone not removed";
    v1::ListModelsResponse models;
    ASSERT_TRUE(ListModels(&models).ok());
    std::set<int64_t> listed;
    for (const auto& model : models.models()) {
      if (model.name() == "del") listed.insert(model.version());
    }
    EXPECT_TRUE(listed.count(keep.version())) << "a version not being deleted was lost";
    std::error_code ec;
    if (listed.count(version)) {
      EXPECT_FALSE(acked) << "acknowledged, yet the version is back";
      EXPECT_EQ(FileDigest(version_dir + "/model.ckpt"), digest) << "listed but not whole";
      EXPECT_TRUE(LoadModel("del", version).ok());
      EXPECT_TRUE(Segment("del", version).ok());
      ++whole;
      outcomes += i ? " w" : "w";
      // Finish the delete, so the next round starts from the same store.
      ASSERT_TRUE(client::DeleteModel(*client_, "del", version).ok());
    } else {
      EXPECT_FALSE(std::filesystem::exists(version_dir, ec)) << "not listed but on disk";
      EXPECT_EQ(Segment("del", version).error_code(), grpc::StatusCode::NOT_FOUND);
      ++gone;
      outcomes += i ? " g" : "g";
    }
  }
  Report(absl::StrCat(kills.size(), " kills during deletes (undisturbed delete ",
                      std::chrono::duration_cast<std::chrono::milliseconds>(undisturbed).count(),
                      " ms): ", whole, " left the version whole, ", gone, " gone, ", acknowledged,
                      " acknowledged; per kill: ", outcomes));
  EXPECT_EQ(whole + gone, static_cast<int>(kills.size()));
}

}  // namespace
}  // namespace segserve::fault
