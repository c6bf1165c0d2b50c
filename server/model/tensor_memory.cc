#include "server/model/tensor_memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <dlfcn.h>
#include <malloc.h>

#include <atomic>
#include <mutex>

#include "server/common/log.h"

namespace segserve::model {
namespace {

// 64 bytes: LibTorch's own CPU alignment (c10::gAlignment), what its vectorised kernels
// assume.
constexpr size_t kAlignment = 64;
// Blocks up to 1 GiB come from the heap, not from mmap: every tensor of a 256x256 batch-16
// training step (the largest activation is 67 MB) is reused instead of faulted in again.
constexpr int kMmapThreshold = 1 << 30;
// Free memory at the top of an arena is kept up to 1 GiB; ReleaseTensorMemory() returns it.
constexpr int kTrimThreshold = 1 << 30;

// glibc's allocator, looked up in libc.so.6 itself. A sanitizer runtime interposes
// malloc, free, mallopt and even __libc_memalign by name; lookups in libc's own handle are
// not interposed, so tensors get ptmalloc with the settings below in every build (under
// ASan, tensor memory is then outside ASan's checks, as LibTorch's uninstrumented code
// already is).
struct Glibc {
  void* (*memalign)(size_t, size_t) = nullptr;
  void (*free)(void*) = nullptr;
  int (*mallopt)(int, int) = nullptr;
};
Glibc glibc;
std::atomic<bool> installed{false};
std::atomic<int> holds{0};

bool ResolveGlibc() {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (libc == nullptr) return false;
  glibc.memalign = reinterpret_cast<void* (*)(size_t, size_t)>(dlsym(libc, "__libc_memalign"));
  glibc.free = reinterpret_cast<void (*)(void*)>(dlsym(libc, "__libc_free"));
  glibc.mallopt = reinterpret_cast<int (*)(int, int)>(dlsym(libc, "__libc_mallopt"));
  return glibc.memalign != nullptr && glibc.free != nullptr && glibc.mallopt != nullptr;
}

void FreeTensorMemory(void* ptr) { glibc.free(ptr); }

class RetainedHeapAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) const override {
    void* data = nullptr;
    if (nbytes > 0) {
      data = glibc.memalign(kAlignment, nbytes);
      // LibTorch reports CPU allocation failure as c10::Error (our callers turn it into
      // RESOURCE_EXHAUSTED), as its default allocator does.
      TORCH_CHECK(data != nullptr, "DefaultCPUAllocator: not enough memory: you tried to ",
                  "allocate ", nbytes, " bytes.");
    }
    return {data, data, &FreeTensorMemory, c10::Device(c10::DeviceType::CPU)};
  }
  // oneDNN's scratch memory goes through raw_allocate/raw_deallocate, i.e. this.
  c10::DeleterFnPtr raw_deleter() const override { return &FreeTensorMemory; }
};

}  // namespace

void InstallTensorAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!ResolveGlibc()) {
      LOG(WARNING) << "tensor memory: glibc's allocator not found; LibTorch's own allocator "
                      "stays (slower training, docs/PERFORMANCE.md)";
      return;
    }
    // Setting either threshold also switches off glibc's dynamic threshold, which would
    // otherwise lower the trim point back to twice the largest freed mmap block.
    glibc.mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
    glibc.mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
    // One arena for every thread created from now on. A job runs on a worker thread, and
    // glibc would give it an arena of its own: heaps of at most 64 MiB that are unmapped
    // whenever they empty, so its tensors would be faulted in every step regardless of the
    // thresholds (measured: 4.2-5.3 images/s at 256x256 batch 8 on a worker thread's arena
    // against 7.1 on the shared one; bench/training). Small blocks still come from each
    // thread's lock-free cache (tcache).
    glibc.mallopt(M_ARENA_MAX, 1);
    static RetainedHeapAllocator allocator;
    // Priority 1 outranks LibTorch's own registration (0).
    c10::SetCPUAllocator(&allocator, /*priority=*/1);
    installed.store(true);
  });
}

bool TensorAllocatorInstalled() { return installed.load(); }

void ReleaseTensorMemory() {
  if (holds.load() == 0) malloc_trim(0);
}

TensorHeapHold::TensorHeapHold() { holds.fetch_add(1); }
TensorHeapHold::~TensorHeapHold() { holds.fetch_sub(1); }

TensorHeapStats ReadTensorHeapStats() {
  const struct mallinfo2 info = mallinfo2();
  TensorHeapStats stats;
  stats.mapped_bytes = static_cast<int64_t>(info.arena + info.hblkhd);
  stats.in_use_bytes = static_cast<int64_t>(info.uordblks + info.hblkhd);
  return stats;
}

}  // namespace segserve::model
