#include "tests/integration/fault_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/lib/http_get.h"
#include "server/common/file_util.h"
#include "tests/testing/commands.h"
#include "server/common/sha256.h"

namespace segserve::fault {
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

absl::Status ErrnoError(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::Status& PrivateMountsStatus() {
  static absl::Status status =
      absl::FailedPreconditionError("EnterPrivateMountNamespace not called");
  return status;
}

}  // namespace

namespace {

constexpr char kInNamespaceVariable[] = "SEGSERVE_FAULT_TEST_IN_NAMESPACE";

// Mounts made in our namespace must not propagate back to the host.
absl::Status MakeMountsPrivate() {
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoError("mount --make-rprivate /");
  }
  return absl::OkStatus();
}

// Unprivileged: unshare(CLONE_NEWUSER) refuses a threaded caller, and libraries start
// threads before main. A forked child has one thread: it enters a user and a mount
// namespace (where it is root over its own mounts) and re-executes this binary there;
// this process waits for it. Between fork and exec only system calls run. Returns the
// child's exit code, or the reason it could not start.
absl::StatusOr<int> RunInUserNamespace(char** argv) {
  const std::string setgroups = "deny";
  const std::string uid_map = absl::StrCat("0 ", ::geteuid(), " 1");
  const std::string gid_map = absl::StrCat("0 ", ::getegid(), " 1");
  std::vector<std::string> env_strings = {absl::StrCat(kInNamespaceVariable, "=1")};
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  int report[2];  // The child writes its errno here when it fails before exec.
  if (::pipe2(report, O_CLOEXEC) != 0) return ErrnoError("pipe2");
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) return ErrnoError("fork");
  if (child == 0) {
    ::close(report[0]);
    auto write_file = [](const char* path, const std::string& text) {
      const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
      const bool ok =
          fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
      if (fd >= 0) ::close(fd);
      return ok;
    };
    const bool entered = ::prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && ::getppid() == parent &&
                         ::unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 &&
                         write_file("/proc/self/setgroups", setgroups) &&
                         write_file("/proc/self/uid_map", uid_map) &&
                         write_file("/proc/self/gid_map", gid_map);
    if (entered) ::execve("/proc/self/exe", argv, envp.data());
    const int err = errno;
    (void)!::write(report[1], &err, sizeof(err));
    ::_exit(127);
  }
  ::close(report[1]);
  int err = 0;
  const ssize_t n = ::read(report[0], &err, sizeof(err));
  ::close(report[0]);
  int status = 0;
  if (n > 0) {
    ::waitpid(child, &status, 0);
    errno = err;
    return ErrnoError("unshare(CLONE_NEWUSER | CLONE_NEWNS) in a child");
  }
  if (::waitpid(child, &status, 0) != child) return ErrnoError("waitpid");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int EnterPrivateMountNamespace(char** argv) {
  absl::Status& result = PrivateMountsStatus();
  if (std::getenv(kInNamespaceVariable) != nullptr) {  // the re-executed child
    result = MakeMountsPrivate();
    return -1;
  }
  // Privileged (root with CAP_SYS_ADMIN): a mount namespace of our own is enough.
  if (::unshare(CLONE_NEWNS) == 0) {
    result = MakeMountsPrivate();
    return -1;
  }
  absl::StatusOr<int> child = RunInUserNamespace(argv);
  if (child.ok()) return *child;
  result = child.status();
  return -1;
}

const absl::Status& PrivateMounts() { return PrivateMountsStatus(); }

absl::StatusOr<std::unique_ptr<TmpfsMount>> TmpfsMount::Mount(const std::string& path,
                                                              int64_t bytes) {
  // In the private namespace when there is one; else a plain mount (root on the host).
  const std::string options = absl::StrCat("size=", bytes, ",mode=0755");
  if (::mount("tmpfs", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot mount a tmpfs on ", path, ": ", std::strerror(errno),
                     " (private mount namespace: ", PrivateMounts().ToString(), ")"));
  }
  return std::unique_ptr<TmpfsMount>(new TmpfsMount(path));
}

TmpfsMount::~TmpfsMount() { ::umount2(path_.c_str(), MNT_DETACH); }

absl::StatusOr<int64_t> FillDisk(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create " + path);
  const std::string chunk(1 << 20, 'F');
  int64_t written = 0;
  // Big writes until the first ENOSPC, then smaller ones for the last partial pages.
  for (size_t size = chunk.size(); size >= 1; size /= 16) {
    while (true) {
      const ssize_t n = ::write(fd, chunk.data(), size);
      if (n > 0) {
        written += n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;
    }
  }
  const int err = errno;
  ::close(fd);
  if (err != ENOSPC) {
    errno = err;
    return ErrnoError("filling " + path + " stopped without ENOSPC");
  }
  return written;
}

absl::Status Overwrite(const std::string& path, int64_t offset, int64_t length, char byte) {
  std::error_code ec;
  const auto size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) return absl::NotFoundError(absl::StrCat(path, ": ", ec.message()));
  if (offset < 0) offset = (size - length) / 2;
  if (offset < 0 || offset + length > size) {
    return absl::OutOfRangeError(absl::StrCat(path, " has only ", size, " bytes"));
  }
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(offset);
  const std::string bytes(static_cast<size_t>(length), byte);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.flush();
  if (!file) return absl::InternalError("cannot overwrite " + path);
  return absl::OkStatus();
}

std::string FileDigest(const std::string& path) {
  auto bytes = common::ReadFile(path);
  return bytes.ok() ? common::Sha256Hex(*bytes) : "";
}

std::string StatusText(const grpc::Status& status) {
  return absl::StrCat(status.error_code(), ": ", status.error_message());
}

void Report(const std::string& line) {
  std::printf("[fault] %s\n", line.c_str());
  std::fflush(stdout);
}

std::vector<std::string> EntriesWithPrefix(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0) names.push_back(name);
  }
  return names;
}

absl::StatusOr<std::unique_ptr<DirWatch>> DirWatch::Create(const std::string& dir) {
  const int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) return ErrnoError("inotify_init1");
  if (::inotify_add_watch(fd, dir.c_str(), IN_CREATE | IN_MOVED_TO) < 0) {
    const absl::Status status = ErrnoError("inotify_add_watch " + dir);
    ::close(fd);
    return status;
  }
  return std::unique_ptr<DirWatch>(new DirWatch(fd));
}

DirWatch::~DirWatch() { ::close(fd_); }

absl::Status DirWatch::Add(const std::string& dir) {
  if (::inotify_add_watch(fd_, dir.c_str(), IN_CREATE | IN_MOVED_TO) < 0) {
    return ErrnoError("inotify_add_watch " + dir);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> DirWatch::WaitFor(const std::string& prefix, bool renamed,
                                              milliseconds timeout) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  alignas(struct inotify_event) char buffer[4096];
  while (true) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(give_up - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return absl::DeadlineExceededError(absl::StrCat("no '", prefix, "*' appeared"));
    }
    struct pollfd pfd = {fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::read(fd_, buffer, sizeof(buffer));
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const struct inotify_event*>(buffer + at);
      at += static_cast<ssize_t>(sizeof(struct inotify_event) + event->len);
      const std::string name = event->len ? event->name : "";
      const bool kind_matches = (event->mask & (renamed ? IN_MOVED_TO : IN_CREATE)) != 0;
      if (kind_matches && name.rfind(prefix, 0) == 0) return name;
    }
  }
}

model::UnetConfig SmallConfig() {
  model::UnetConfig config;
  config.encoder = model::EncoderKind::kResNet18;
  config.skip_prune_level = 1;
  config.in_channels = 3;
  config.classes = 3;
  return config;
}

FaultTest::FaultTest() : data_dir_(dir_.path()) {}

void FaultTest::StartServer(const std::vector<std::string>& flags) {
  auto server = testing::ServerProcess::Start(testing::SegserveBinary(), data_dir_, flags);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);
  client::ClientOptions options;
  options.target = server_->grpc_target();
  options.timeout = seconds(120);
  auto created = client::Client::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  client_ = std::move(*created);
  // Health turns SERVING once the startup models are loaded; gRPC has no push for it here.
  auto health = client_->Health();
  for (int i = 0; i < 1200 && !(health.ok() && *health == client::ServingStatus::kServing); ++i) {
    std::this_thread::sleep_for(milliseconds(25));
    health = client_->Health();
  }
  ASSERT_TRUE(health.ok() && *health == client::ServingStatus::kServing) << "not SERVING";
  models_ = v1::Models::NewStub(client_->channel());
  segmentation_ = v1::Segmentation::NewStub(client_->channel());
  training_ = v1::Training::NewStub(client_->channel());
  datasets_ = v1::Datasets::NewStub(client_->channel());
}

void FaultTest::Kill() {
  ASSERT_NE(server_, nullptr);
  auto killed = server_->Stop(SIGKILL, milliseconds(10000));
  EXPECT_FALSE(killed.ok()) << "segserve exited with " << *killed << " instead of dying";
  server_.reset();
}

void FaultTest::StopGracefully() {
  ASSERT_NE(server_, nullptr);
  // Our idle channel would otherwise hold the drain open for seconds.
  models_.reset();
  segmentation_.reset();
  training_.reset();
  datasets_.reset();
  client_.reset();
  auto stopped = server_->Stop(SIGTERM, milliseconds(30000));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(*stopped, 0);
  server_.reset();
}

grpc::Status FaultTest::Import(const std::string& name, const std::string& state_dict, bool load,
                               v1::ModelInfo* info, const std::string& import_id) {
  v1::ImportModelRequest request;
  request.set_name(name);
  request.set_import_id(import_id);
  const model::UnetConfig config = SmallConfig();
  request.mutable_config()->set_encoder(v1::ENCODER_RESNET18);
  request.mutable_config()->set_skip_prune_level(config.skip_prune_level);
  request.mutable_config()->set_in_channels(config.in_channels);
  request.mutable_config()->set_classes(config.classes);
  request.set_state_dict(state_dict);
  request.set_load(load);
  auto context = client_->NewContext();
  return models_->Import(context.get(), request, info);
}

grpc::Status FaultTest::ListModels(v1::ListModelsResponse* response) {
  auto context = client_->NewContext();
  return models_->List(context.get(), v1::ListModelsRequest(), response);
}

grpc::Status FaultTest::GetModel(const std::string& name, int64_t version, v1::ModelInfo* info) {
  v1::GetModelRequest request;
  request.mutable_model()->set_name(name);
  request.mutable_model()->set_version(version);
  auto context = client_->NewContext();
  return models_->Get(context.get(), request, info);
}

grpc::Status FaultTest::LoadModel(const std::string& name, int64_t version) {
  v1::LoadModelRequest request;
  request.mutable_model()->set_name(name);
  request.mutable_model()->set_version(version);
  v1::ModelInfo info;
  auto context = client_->NewContext();
  return models_->Load(context.get(), request, &info);
}

grpc::Status FaultTest::Segment(const std::string& name, int64_t version,
                                v1::SegmentResponse* response) {
  v1::SegmentRequest request;
  request.mutable_model()->set_name(name);
  request.mutable_model()->set_version(version);
  auto* raw = request.mutable_image()->mutable_raw();
  raw->set_height(64);
  raw->set_width(64);
  raw->set_channels(3);
  raw->set_dtype(v1::DTYPE_UINT8);
  std::string pixels(64 * 64 * 3, '\0');
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<char>((i * 37) % 251);
  raw->set_data(pixels);
  v1::SegmentResponse ignored;
  auto context = client_->NewContext();
  return segmentation_->Segment(context.get(), request, response ? response : &ignored);
}

grpc::Status FaultTest::Generate(const std::string& name, int n, v1::Job* job) {
  v1::GenerateDatasetRequest request;
  request.set_name(name);
  request.set_n(n);
  request.set_size(64);
  request.set_seed(3);
  auto context = client_->NewContext();
  return datasets_->Generate(context.get(), request, job);
}

grpc::Status FaultTest::ListDatasets(v1::ListDatasetsResponse* response) {
  auto context = client_->NewContext();
  return datasets_->List(context.get(), v1::ListDatasetsRequest(), response);
}

grpc::Status FaultTest::SubmitTrain(const v1::TrainSpec& spec, v1::Job* job) {
  auto context = client_->NewContext();
  return training_->SubmitTrain(context.get(), spec, job);
}

grpc::Status FaultTest::GetJob(const std::string& id, v1::Job* job) {
  v1::JobRef ref;
  ref.set_job_id(id);
  auto context = client_->NewContext();
  return training_->GetJob(context.get(), ref, job);
}

grpc::Status FaultTest::ListJobs(v1::ListJobsResponse* response) {
  v1::ListJobsRequest request;
  request.set_page_size(100);
  auto context = client_->NewContext();
  return training_->ListJobs(context.get(), request, response);
}

v1::Job FaultTest::WaitTerminal(const std::string& id,
                                const std::function<void(const v1::JobEvent&)>& on_event) {
  return testing::WatchUntilTerminal(*training_, id, seconds(300), on_event);
}

void FaultTest::MakeDataset(const std::string& name, int n) {
  v1::Job job;
  grpc::Status status = Generate(name, n, &job);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const v1::Job done = WaitTerminal(job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
}

v1::TrainSpec FaultTest::TinySpec(const std::string& dataset, int epochs, int steps) {
  return testing::TinyTrainSpec(dataset, epochs, steps);
}

double FaultTest::Metric(const std::string& series) { return server_->Metric(series); }

}  // namespace segserve::fault
