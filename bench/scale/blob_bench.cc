// The model registry's blob backends with a real checkpoint (a ResNet34 U-net, ~98 MB), in
// one run: the file store (single box), PostgreSQL + a blob directory, PostgreSQL + large
// objects. Per backend and repeat:
//   register   ModelStore::AddVersion of the serialised checkpoint (what a trainer does):
//              seconds, MB/s, and the growth of peak RSS (VmHWM, reset through
//              /proc/self/clear_refs) beyond the checkpoint bytes the caller already holds
//              (malloc is set to return large blocks to the kernel, so each step's peak is
//              its own);
//   fetch      a second store on another data dir (another replica) asks for the
//              version's file (ModelStore::CheckpointFile: large objects are streamed into
//              its cache and hashed; a shared blob file is hashed in place; the file store
//              hands out its path): seconds and peak RSS growth.
// bench/scale/blob.sh starts a private PostgreSQL and runs this; docs/PERFORMANCE.md
// "Distributed mode (issue 13)" quotes it.
//
//   scale_blob_bench --postgres "host=/tmp/pg user=segserve" [--repeats 3]
//                    [--encoder resnet34]
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/model/checkpoint.h"
#include "server/model/unet.h"
#include "server/postgres/connection.h"
#include "server/registry/model_store.h"

namespace {
namespace fs = std::filesystem;
using namespace segserve;

// kB of the named line ("VmHWM:", "VmRSS:") of /proc/self/status.
int64_t StatusKb(const char* key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + std::strlen(key));
  }
  return -1;
}

void ResetPeak() { std::ofstream("/proc/self/clear_refs") << "5"; }

struct Measured {
  double seconds = 0;
  double peak_growth_mb = 0;  // VmHWM after the step minus VmRSS before it
};

template <typename F>
Measured Measure(F&& step) {
  ResetPeak();
  const int64_t rss_before = StatusKb("VmRSS:");
  const auto start = std::chrono::steady_clock::now();
  step();
  Measured m;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.peak_growth_mb = static_cast<double>(StatusKb("VmHWM:") - rss_before) / 1024.0;
  return m;
}

int Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Large blocks straight from mmap and back to the kernel when freed, so each step's peak
  // RSS is its own (glibc would otherwise keep the first step's memory resident).
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
  std::string postgres;
  std::string encoder = "resnet34";
  int repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--postgres")
      postgres = argv[i + 1];
    else if (flag == "--repeats")
      repeats = std::atoi(argv[i + 1]);
    else if (flag == "--encoder")
      encoder = argv[i + 1];
  }
  if (postgres.empty() || repeats < 1) {
    std::fprintf(stderr, "usage: %s --postgres CONNINFO [--repeats N] [--encoder E]\n", argv[0]);
    return 2;
  }
  model::UnetConfig config;
  config.encoder =
      encoder == "resnet18" ? model::EncoderKind::kResNet18 : model::EncoderKind::kResNet34;
  config.classes = 2;
  std::string bytes;
  {
    model::Unet net(model::WithDefaultNormalisation(config));
    auto serialised = model::SerializeCheckpoint(net, {{"source", "blob_bench"}});
    if (!serialised.ok()) return Fail("serialise", serialised.status());
    bytes = std::move(*serialised);
  }
  const double mb = static_cast<double>(bytes.size()) / (1 << 20);
  std::printf("checkpoint: %s U-net, %.1f MB; %d repeats\n", encoder.c_str(), mb, repeats);
  std::printf("%-22s %-8s %9s %9s %16s\n", "backend", "step", "seconds", "MB/s", "peak RSS growth");

  const fs::path root =
      fs::temp_directory_path() / ("segserve_blob_bench_" + std::to_string(::getpid()));
  struct Backend {
    const char* name;
    bool postgres;
    registry::BlobBackend blobs;
  };
  const Backend backends[] = {{"files", false, registry::BlobBackend::kDirectory},
                              {"postgres+directory", true, registry::BlobBackend::kDirectory},
                              {"postgres+large_object", true, registry::BlobBackend::kLargeObject}};
  int db_index = 0;
  for (const Backend& backend : backends) {
    registry::ModelStoreOptions options;
    options.refresh_interval = absl::ZeroDuration();
    if (backend.postgres) {
      // A fresh database per backend.
      postgres::ConnectOptions admin_options;
      admin_options.conninfo = postgres + " dbname=postgres";
      auto admin = postgres::Connection::Open(admin_options);
      if (!admin.ok()) return Fail("connect", admin.status());
      const std::string db = absl::StrCat("blob_bench_", ::getpid(), "_", db_index++);
      if (auto s = (*admin)->ExecSql("CREATE DATABASE " + db); !s.ok()) {
        return Fail("create database", s.status());
      }
      options.database.conninfo = postgres + " dbname=" + db;
      options.database.statement_timeout = std::chrono::milliseconds(60000);
      options.blobs = backend.blobs;
    }
    const std::string dir_a = (root / (std::string(backend.name) + "-a")).string();
    // The directory backends share their data dir (the RWX volume); large objects do not.
    const std::string dir_b = backend.blobs == registry::BlobBackend::kLargeObject
                                  ? (root / (std::string(backend.name) + "-b")).string()
                                  : dir_a;
    auto writer = registry::ModelStore::Open(dir_a, options);
    if (!writer.ok()) return Fail("open", writer.status());
    for (int r = 0; r < repeats; ++r) {
      absl::StatusOr<registry::StoredVersion> stored = absl::UnknownError("not run");
      Measured add = Measure([&] { stored = (*writer)->AddVersion("bench", bytes); });
      if (!stored.ok()) return Fail("AddVersion", stored.status());
      std::printf("%-22s %-8s %9.3f %9.1f %13.1f MB\n", backend.name, "register", add.seconds,
                  mb / add.seconds, add.peak_growth_mb);
      auto reader = registry::ModelStore::Open(dir_b, options);
      if (!reader.ok()) return Fail("open reader", reader.status());
      absl::StatusOr<std::string> file = absl::UnknownError("not run");
      Measured fetch = Measure([&] { file = (*reader)->CheckpointFile(*stored); });
      if (!file.ok()) return Fail("CheckpointFile", file.status());
      std::printf("%-22s %-8s %9.3f %9.1f %13.1f MB\n", backend.name, "fetch", fetch.seconds,
                  mb / fetch.seconds, fetch.peak_growth_mb);
    }
  }
  std::error_code ec;
  fs::remove_all(root, ec);
  return 0;
}
