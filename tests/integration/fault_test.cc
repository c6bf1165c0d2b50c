// Fault injection against the real segserve binary (issue 9): SIGKILL at many points of
// model imports and of a trained model's registration, a full disk under the data dir and a
// corrupted jobs.db page (damaged checkpoints: fault_checkpoint_test.cc). Each test asserts
// what the operator and the clients see afterwards; docs/RELIABILITY.md (Faults) records
// the runs. Kills land at points a directory watch sees (a version's temporary directory
// appearing, its files and then itself renamed into place) and at measured fractions of an
// import's phases; no fault-injection hook is compiled into the server. main() is here.
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "test_paths.h"
#include "tests/integration/fault_harness.h"
#include "tests/testing/model_fixture.h"

namespace segserve::fault {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr milliseconds kEventTimeout(120000);

double Ms(Clock::duration d) {
  return std::round(std::chrono::duration<double, std::milli>(d).count());
}

// Numbered version directories of a model on disk.
std::set<int64_t> VersionDirs(const std::string& model_dir) {
  std::set<int64_t> versions;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(model_dir, ec)) {
    int64_t version = 0;
    if (absl::SimpleAtoi(entry.path().filename().string(), &version)) versions.insert(version);
  }
  return versions;
}

// Where a kill lands: at `fraction` of a phase after an anchor the test observes.
enum class Anchor {
  kSent,        // the Import call was issued (receive, parse, serialise: no file yet)
  kTempDir,     // the version's .tmp- directory appeared (model.ckpt being written)
  kCheckpoint,  // model.ckpt was renamed into the .tmp- directory (meta.json next)
  kMeta,        // meta.json was renamed into it (the version's rename next)
  kCommit,      // the rename into models/<name>/<version> happened
  kReply,       // the client holds the reply
};

struct KillPoint {
  Anchor anchor;
  double fraction;  // of the phase that follows the anchor (kSent, kTempDir, kCommit)
};

// Versions of `name` listed by Models.List; fails the test on a listed name or version
// that is not a complete numbered directory.
std::set<int64_t> Listed(const v1::ListModelsResponse& models, const std::string& name) {
  std::set<int64_t> versions;
  for (const auto& model : models.models()) {
    EXPECT_FALSE(absl::StartsWith(model.name(), ".")) << model.name();
    if (model.name() == name) versions.insert(model.version());
  }
  return versions;
}

TEST_F(FaultTest, SigkillDuringImportsNeverLeavesAPartialVersionVisible) {
  auto state_dict = testing::TestModelStateDict(SmallConfig(), 11);
  ASSERT_TRUE(state_dict.ok()) << state_dict.status();
  const std::string model_dir = ModelsDir() + "/imp";
  ASSERT_TRUE(common::MakeDirectories(model_dir).ok());
  ASSERT_NO_FATAL_FAILURE(StartServer());

  // An undisturbed import, timed by phase: the kill points below are fractions of these.
  auto watch = DirWatch::Create(model_dir);
  ASSERT_TRUE(watch.ok()) << watch.status();
  const auto t0 = Clock::now();
  auto first = std::async(std::launch::async, [&] {
    v1::ModelInfo info;
    return Import("imp", *state_dict, false, &info);
  });
  auto temp_dir = (*watch)->WaitFor(".tmp-", false, kEventTimeout);
  ASSERT_TRUE(temp_dir.ok()) << temp_dir.status();
  const auto t1 = Clock::now();
  ASSERT_TRUE((*watch)->Add(model_dir + "/" + *temp_dir).ok());
  ASSERT_TRUE((*watch)->WaitFor("model.ckpt", true, kEventTimeout).ok());
  const auto t2 = Clock::now();
  ASSERT_TRUE((*watch)->WaitFor("1", true, kEventTimeout).ok());
  const auto t3 = Clock::now();
  const grpc::Status first_status = first.get();
  ASSERT_TRUE(first_status.ok()) << StatusText(first_status);
  const auto t4 = Clock::now();
  const Clock::duration before_files = t1 - t0, writing = t2 - t1, after_commit = t4 - t3;
  std::set<int64_t> verified;  // versions seen loading and serving
  ASSERT_TRUE(LoadModel("imp", 1).ok());
  ASSERT_TRUE(Segment("imp", 1).ok());
  verified.insert(1);
  Report(absl::StrCat("import of ", state_dict->size(), " bytes: ", Ms(before_files),
                      " ms before files, ", Ms(writing), " ms writing model.ckpt, ", Ms(t3 - t2),
                      " ms to the commit, ", Ms(after_commit), " ms after the commit"));

  // Most points fall where a partial version exists on disk; four are events, not times.
  const std::vector<KillPoint> kills = {{Anchor::kSent, 0.5},     {Anchor::kTempDir, 0},
                                        {Anchor::kTempDir, 0.25}, {Anchor::kTempDir, 0.5},
                                        {Anchor::kTempDir, 0.75}, {Anchor::kCheckpoint, 0},
                                        {Anchor::kMeta, 0},       {Anchor::kCommit, 0},
                                        {Anchor::kCommit, 0.5},   {Anchor::kReply, 0}};
  int temp_left = 0, committed = 0, acknowledged = 0;
  std::string outcomes;  // per kill: t = temporary left, c = committed, a = acknowledged
  for (size_t i = 0; i < kills.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("kill ", i));
    const KillPoint& kill = kills[i];
    watch = DirWatch::Create(model_dir);
    ASSERT_TRUE(watch.ok()) << watch.status();
    const size_t versions_before = verified.size();
    v1::ModelInfo info;
    const auto sent = Clock::now();
    const std::string import_id = absl::StrCat("fault-import-", i);
    auto import = std::async(std::launch::async,
                             [&] { return Import("imp", *state_dict, false, &info, import_id); });
    switch (kill.anchor) {
      case Anchor::kSent:
        std::this_thread::sleep_until(
            sent + std::chrono::duration_cast<Clock::duration>(before_files * kill.fraction));
        break;
      case Anchor::kTempDir:
        ASSERT_TRUE((*watch)->WaitFor(".tmp-", false, kEventTimeout).ok());
        std::this_thread::sleep_for(
            std::chrono::duration_cast<Clock::duration>(writing * kill.fraction));
        break;
      case Anchor::kCheckpoint:
      case Anchor::kMeta: {
        // The files land tens of milliseconds after the directory: time to watch it.
        auto dir = (*watch)->WaitFor(".tmp-", false, kEventTimeout);
        ASSERT_TRUE(dir.ok()) << dir.status();
        ASSERT_TRUE((*watch)->Add(model_dir + "/" + *dir).ok());
        const char* file = kill.anchor == Anchor::kCheckpoint ? "model.ckpt" : "meta.json";
        ASSERT_TRUE((*watch)->WaitFor(file, true, kEventTimeout).ok()) << file;
        break;
      }
      case Anchor::kCommit:
        ASSERT_TRUE(
            (*watch)->WaitFor(std::to_string(versions_before + 1), true, kEventTimeout).ok());
        std::this_thread::sleep_for(
            std::chrono::duration_cast<Clock::duration>(after_commit * kill.fraction));
        break;
      case Anchor::kReply:
        import.wait();
        break;
    }
    ASSERT_NO_FATAL_FAILURE(Kill());
    const grpc::Status import_status = import.get();
    const bool temp = !EntriesWithPrefix(model_dir, ".tmp-").empty();
    acknowledged += import_status.ok();
    temp_left += temp;

    ASSERT_NO_FATAL_FAILURE(StartServer());
    EXPECT_TRUE(EntriesWithPrefix(model_dir, ".tmp-").empty()) << "not cleaned at startup";
    v1::ListModelsResponse models;
    ASSERT_TRUE(ListModels(&models).ok());
    const std::set<int64_t> listed = Listed(models, "imp");
    EXPECT_EQ(listed, VersionDirs(model_dir)) << "listed versions differ from complete ones";
    if (import_status.ok()) {
      EXPECT_TRUE(listed.count(info.version())) << "acknowledged, then lost";
    }
    const bool new_version = listed.size() > versions_before;
    committed += new_version;
    absl::StrAppend(&outcomes, i ? " " : "", temp ? "t" : "", new_version ? "c" : "",
                    import_status.ok() ? "a" : "", temp || new_version ? "" : "-");
    // The client retries with the same import id, as segctl does after UNAVAILABLE: the
    // version the killed import committed, or else exactly one new version.
    v1::ModelInfo retried;
    const grpc::Status retry = Import("imp", *state_dict, false, &retried, import_id);
    ASSERT_TRUE(retry.ok()) << StatusText(retry);
    if (new_version) {
      EXPECT_TRUE(listed.count(retried.version())) << "the retry added v" << retried.version();
    }
    ASSERT_TRUE(ListModels(&models).ok());
    const std::set<int64_t> after_retry = Listed(models, "imp");
    EXPECT_EQ(after_retry.size(), versions_before + 1) << "one version per import id";
    if (import_status.ok()) EXPECT_EQ(retried.version(), info.version());
    for (int64_t version : after_retry) {
      if (verified.count(version)) continue;
      grpc::Status loaded = LoadModel("imp", version);
      ASSERT_TRUE(loaded.ok()) << "v" << version << ": " << StatusText(loaded);
      grpc::Status served = Segment("imp", version);
      ASSERT_TRUE(served.ok()) << "v" << version << ": " << StatusText(served);
      verified.insert(version);
    }
  }
  Report(absl::StrCat(kills.size(), " kills during imports: ", temp_left,
                      " left a temporary directory (removed at startup), ", committed,
                      " committed a version, ", acknowledged, " acknowledged; ", verified.size(),
                      " versions loaded and served; per kill: ", outcomes));

  // The store is not wedged: the next import takes the next number and serves.
  v1::ModelInfo info;
  grpc::Status status = Import("imp", *state_dict, true, &info);
  ASSERT_TRUE(status.ok()) << StatusText(status);
  EXPECT_EQ(info.version(), *verified.rbegin() + 1);
  EXPECT_TRUE(Segment("imp", info.version()).ok());
}

TEST_F(FaultTest, SigkillDuringATrainedModelsRegistrationRegistersItExactlyOnce) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(MakeDataset("reg", 8));
  const std::string model_dir = ModelsDir() + "/reg-model";
  ASSERT_TRUE(common::MakeDirectories(model_dir).ok());  // so the watch can start first
  // While the version is written, and right after its rename (before the run records the
  // registration in runs/<job>/registered.json).
  for (const bool at_commit : {false, true}) {
    SCOPED_TRACE(at_commit ? "kill at the commit" : "kill while writing");
    auto watch = DirWatch::Create(model_dir);
    ASSERT_TRUE(watch.ok()) << watch.status();
    v1::TrainSpec spec = TinySpec("reg", 1, 1);
    spec.set_model_name("reg-model");
    v1::Job job;
    grpc::Status status = SubmitTrain(spec, &job);
    ASSERT_TRUE(status.ok()) << StatusText(status);
    ASSERT_TRUE((*watch)->WaitFor(at_commit ? "" : ".tmp-", at_commit, kEventTimeout).ok());
    ASSERT_NO_FATAL_FAILURE(Kill());

    ASSERT_NO_FATAL_FAILURE(StartServer());
    const v1::Job done = WaitTerminal(job.job_id());
    ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
    EXPECT_EQ(done.restarts(), 1);
    v1::ListModelsResponse models;
    ASSERT_TRUE(ListModels(&models).ok());
    std::vector<int64_t> of_this_job;
    for (const auto& model : models.models()) {
      if (model.source_job_id() == job.job_id()) of_this_job.push_back(model.version());
    }
    ASSERT_EQ(of_this_job.size(), 1u) << "registered " << of_this_job.size() << " times";
    EXPECT_EQ(of_this_job[0], done.model_version());
    EXPECT_TRUE(EntriesWithPrefix(model_dir, ".tmp-").empty());
    grpc::Status served = Segment("reg-model", done.model_version());
    EXPECT_TRUE(served.ok()) << StatusText(served);
  }
}

TEST_F(FaultTest, DiskFullGivesClearErrorsLosesNothingAndRecoversWithoutRestart) {
  data_dir_ = dir_.path() + "/data";
  ASSERT_TRUE(common::MakeDirectories(data_dir_).ok());
  // Room for two imported models and one training run (checkpoints, Adam state, the model).
  auto mount = TmpfsMount::Mount(data_dir_, 512ll << 20);
  if (!mount.ok()) GTEST_SKIP() << mount.status();
  auto state_dict = testing::TestModelStateDict(SmallConfig(), 21);
  ASSERT_TRUE(state_dict.ok()) << state_dict.status();
  // A clear refusal: RESOURCE_EXHAUSTED naming the disk or, when the request fitted in
  // space SQLite already had, a job that fails saying so.
  auto expect_refused_for_space = [this](const grpc::Status& status, const v1::Job& job) {
    if (!status.ok()) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << StatusText(status);
      EXPECT_TRUE(absl::StrContains(status.error_message(), "disk is full") ||
                  absl::StrContains(status.error_message(), "no space left on device"))
          << status.error_message();
      return;
    }
    const v1::Job done = WaitTerminal(job.job_id());
    EXPECT_EQ(done.state(), v1::JOB_STATE_FAILED);
    EXPECT_TRUE(absl::StrContains(done.reason(), "no space left on device")) << done.reason();
  };

  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::Job earlier;
  ASSERT_TRUE(Generate("before", 8, &earlier).ok());
  ASSERT_EQ(WaitTerminal(earlier.job_id()).state(), v1::JOB_STATE_SUCCEEDED);
  v1::ModelInfo info;
  grpc::Status status = Import("before", *state_dict, true, &info);
  ASSERT_TRUE(status.ok()) << StatusText(status);

  auto filled = FillDisk(data_dir_ + "/filler");
  ASSERT_TRUE(filled.ok()) << filled.status();
  Report(absl::StrCat("filled the data dir's tmpfs with ", *filled, " bytes"));

  status = Import("full", *state_dict, false, &info);
  Report(absl::StrCat("disk full: Import answered ", StatusText(status)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << StatusText(status);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "no space left on device"))
      << status.error_message();
  EXPECT_TRUE(EntriesWithPrefix(ModelsDir() + "/full", ".tmp-").empty()) << "partial version";
  EXPECT_EQ(GetModel("full", 0, &info).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::Job job;
  status = Generate("during", 8, &job);
  Report(absl::StrCat("disk full: Generate answered ", StatusText(status)));
  expect_refused_for_space(status, job);
  EXPECT_TRUE(EntriesWithPrefix(data_dir_ + "/datasets", ".tmp-").empty()) << "partial data set";
  status = SubmitTrain(TinySpec("before", 1, 1), &job);
  Report(absl::StrCat("disk full: SubmitTrain answered ", StatusText(status)));
  expect_refused_for_space(status, job);

  // What was accepted before the disk filled is intact.
  status = Segment("before", 0);
  EXPECT_TRUE(status.ok()) << StatusText(status);
  v1::Job again;
  ASSERT_TRUE(GetJob(earlier.job_id(), &again).ok());
  EXPECT_EQ(again.state(), v1::JOB_STATE_SUCCEEDED);

  // Space is back: the same process imports, generates and trains again.
  ASSERT_TRUE(fs::remove(data_dir_ + "/filler"));
  status = Import("after", *state_dict, true, &info);
  ASSERT_TRUE(status.ok()) << StatusText(status);
  EXPECT_TRUE(Segment("after", 0).ok());
  ASSERT_NO_FATAL_FAILURE(MakeDataset("after", 8));
  v1::TrainSpec spec = TinySpec("after", 1, 1);
  spec.set_model_name("trained-after");
  ASSERT_TRUE(SubmitTrain(spec, &job).ok());
  const v1::Job trained = WaitTerminal(job.job_id());
  EXPECT_EQ(trained.state(), v1::JOB_STATE_SUCCEEDED) << trained.reason();

  // Full again, kill -9, restart on the full disk: jobs.db opens with every accepted job,
  // the models serve.
  filled = FillDisk(data_dir_ + "/filler");
  ASSERT_TRUE(filled.ok()) << filled.status();
  ASSERT_NO_FATAL_FAILURE(Kill());
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_EQ(Metric("segserve_job_store_healthy"), 1);
  for (const std::string& id : {earlier.job_id(), job.job_id()}) {
    ASSERT_TRUE(GetJob(id, &again).ok()) << id;
    EXPECT_EQ(again.state(), v1::JOB_STATE_SUCCEEDED) << id;
  }
  for (const char* model : {"before", "after", "trained-after"}) {
    status = Segment(model, 0);
    EXPECT_TRUE(status.ok()) << model << ": " << StatusText(status);
  }
  v1::ListDatasetsResponse sets;
  ASSERT_TRUE(ListDatasets(&sets).ok());
  EXPECT_EQ(sets.datasets_size(), 2);
  ASSERT_NO_FATAL_FAILURE(Kill());  // before the tmpfs goes
}

TEST_F(FaultTest, CorruptJobsDbPageIsReportedAndEverythingElseServes) {
  ASSERT_TRUE(testing::AddTestModel(data_dir_, "seg", SmallConfig(), 5).ok());
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(MakeDataset("jd", 8));
  // A history worth losing: a job holding the slot and a dozen queued ones, all cancelled.
  std::vector<std::string> ids;
  for (int i = 0; i < 13; ++i) {
    v1::Job job;
    grpc::Status status = SubmitTrain(TinySpec("jd", 1000, 1), &job);
    ASSERT_TRUE(status.ok()) << StatusText(status);
    ids.push_back(job.job_id());
  }
  for (const std::string& id : ids) {
    v1::JobRef ref;
    ref.set_job_id(id);
    v1::Job cancelled;
    auto context = client_->NewContext();
    ASSERT_TRUE(training_->CancelJob(context.get(), ref, &cancelled).ok());
  }
  EXPECT_EQ(WaitTerminal(ids[0]).state(), v1::JOB_STATE_CANCELLED);
  ASSERT_NO_FATAL_FAILURE(StopGracefully());  // the WAL is checkpointed into jobs.db

  const std::string db = data_dir_ + "/jobs.db";
  ASSERT_FALSE(fs::exists(db + "-wal"));
  const auto pages = static_cast<int64_t>(fs::file_size(db)) / 4096;
  ASSERT_GE(pages, 5);
  ASSERT_TRUE(Overwrite(db, pages / 2 * 4096, 4096, '\xa5').ok());
  Report(absl::StrCat("jobs.db: ", pages, " pages, page ", pages / 2 + 1, " overwritten"));
  const std::string digest = FileDigest(db);

  ASSERT_NO_FATAL_FAILURE(StartServer());  // health SERVING
  grpc::Status status = Segment("seg", 0);
  EXPECT_TRUE(status.ok()) << StatusText(status);
  v1::ListModelsResponse models;
  EXPECT_TRUE(ListModels(&models).ok());
  v1::ListDatasetsResponse sets;
  EXPECT_TRUE(ListDatasets(&sets).ok());
  EXPECT_EQ(Metric("segserve_job_store_healthy"), 0);

  auto expect_clear = [&](const grpc::Status& s, const char* rpc) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << rpc << ": " << StatusText(s);
    EXPECT_TRUE(absl::StrContains(s.error_message(), "jobs.db failed its integrity check"))
        << rpc << ": " << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), db)) << rpc;
    EXPECT_TRUE(absl::StrContains(s.error_message(), "docs/RELIABILITY.md")) << rpc;
  };
  v1::Job job;
  expect_clear(GetJob(ids[0], &job), "GetJob");
  v1::ListJobsResponse jobs;
  expect_clear(ListJobs(&jobs), "ListJobs");
  expect_clear(SubmitTrain(TinySpec("jd", 1, 1), &job), "SubmitTrain");
  expect_clear(Generate("jd2", 8, &job), "Generate");
  {
    grpc::ClientContext context;
    v1::JobRef ref;
    ref.set_job_id(ids[0]);
    auto reader = training_->WatchJob(&context, ref);
    v1::JobEvent event;
    EXPECT_FALSE(reader->Read(&event));
    expect_clear(reader->Finish(), "WatchJob");
  }
  EXPECT_EQ(FileDigest(db), digest) << "the damaged jobs.db was modified";

  // The recovery docs/RELIABILITY.md describes brings the readable jobs back.
  if (std::system("command -v sqlite3 >/dev/null") != 0) {
    Report("sqlite3 not installed: the recovery script was not exercised");
    return;
  }
  ASSERT_NO_FATAL_FAILURE(StopGracefully());
  const std::string recover =
      absl::StrCat(SEGSERVE_SOURCE_DIR, "/scripts/recover-jobs-db.sh ", data_dir_);
  ASSERT_EQ(std::system(recover.c_str()), 0) << recover;
  EXPECT_EQ(EntriesWithPrefix(data_dir_, "jobs.db.damaged-").size(), 1u) << "not kept";
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_EQ(Metric("segserve_job_store_healthy"), 1);
  status = ListJobs(&jobs);
  ASSERT_TRUE(status.ok()) << StatusText(status);
  Report(
      absl::StrCat("recover-jobs-db.sh kept ", jobs.jobs_size(), " of ", ids.size() + 1, " jobs"));
  EXPECT_GT(jobs.jobs_size(), 0);
  status = SubmitTrain(TinySpec("jd", 1, 1), &job);
  EXPECT_TRUE(status.ok()) << StatusText(status);
}

}  // namespace
}  // namespace segserve::fault

// Every test runs in a private mount namespace (see EnterPrivateMountNamespace), entered
// before gtest or gRPC start threads.
int main(int argc, char** argv) {
  const int child_exit = segserve::fault::EnterPrivateMountNamespace(argv);
  if (child_exit >= 0) return child_exit;
  if (!segserve::fault::PrivateMounts().ok()) {
    std::fprintf(stderr,
                 "[fault] no private mount namespace (%s): the disk-full test will try a "
                 "plain mount\n",
                 segserve::fault::PrivateMounts().ToString().c_str());
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
