// File: tests/model/tensor_memory_test.cc — the retained-heap tensor allocator: tensors
// allocated after the install come from it (aligned as LibTorch's kernels need), tensors
// from before keep their own deleter, freed memory stays mapped for the next step, and
// ReleaseTensorMemory gives it back unless a training job holds it.
#include "server/model/tensor_memory.h"

#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>

namespace segserve::model {
namespace {

constexpr int64_t kMiB = 1 << 20;

TEST(TensorMemoryTest, TensorsComeFromTheRetainedHeapAndItIsGivenBackOnRelease) {
  // Each ctest case is its own process: nothing installed it yet.
  ASSERT_FALSE(TensorAllocatorInstalled());
  torch::Tensor before = torch::ones({4 * kMiB / 4});
  const c10::DeleterFnPtr libtorch_deleter = before.storage().data_ptr().get_deleter();

  InstallTensorAllocator();
  InstallTensorAllocator();  // idempotent
  ASSERT_TRUE(TensorAllocatorInstalled());
  const c10::DeleterFnPtr ours = c10::GetCPUAllocator()->raw_deleter();
  ASSERT_NE(ours, nullptr);
  EXPECT_NE(ours, libtorch_deleter);

  // Kernels and autograd run on it, 64-byte aligned as LibTorch's vectorised code assumes.
  torch::Tensor x = torch::randn({3, 33, 17}, torch::requires_grad());
  torch::Tensor y = (x * x).sum();
  y.backward();
  EXPECT_EQ(x.storage().data_ptr().get_deleter(), ours);
  EXPECT_EQ(x.grad().storage().data_ptr().get_deleter(), ours);
  EXPECT_TRUE(torch::allclose(x.grad(), 2 * x));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.data_ptr()) % 64, 0u);
  EXPECT_EQ(torch::empty({0}).numel(), 0);

  // The tensor from before the install is freed by LibTorch's own deleter.
  EXPECT_EQ(before.storage().data_ptr().get_deleter(), libtorch_deleter);
  before = torch::Tensor();

  // A 256 MiB block freed stays mapped (the next step reuses it without faulting it in);
  // ReleaseTensorMemory returns it.
  ReleaseTensorMemory();
  const TensorHeapStats start = ReadTensorHeapStats();
  {
    torch::Tensor big = torch::ones({256 * kMiB / 4});
    EXPECT_EQ(big.storage().data_ptr().get_deleter(), ours);
    const TensorHeapStats held = ReadTensorHeapStats();
    EXPECT_GE(held.in_use_bytes - start.in_use_bytes, 256 * kMiB);
    EXPECT_GE(held.mapped_bytes - start.mapped_bytes, 256 * kMiB);
  }
  const TensorHeapStats freed = ReadTensorHeapStats();
  EXPECT_LT(freed.in_use_bytes - start.in_use_bytes, 16 * kMiB);
  EXPECT_GE(freed.mapped_bytes - start.mapped_bytes, 256 * kMiB) << "freed memory was unmapped";
  {
    // A running training job holds the heap: an idle release then leaves it mapped.
    const TensorHeapHold hold;
    ReleaseTensorMemory();
    EXPECT_GE(ReadTensorHeapStats().mapped_bytes - start.mapped_bytes, 256 * kMiB);
  }
  ReleaseTensorMemory();
  const TensorHeapStats released = ReadTensorHeapStats();
  EXPECT_LT(released.mapped_bytes - start.mapped_bytes, 16 * kMiB);
}

}  // namespace
}  // namespace segserve::model
