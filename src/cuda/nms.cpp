// The nms family's launcher (kernels/nms.cuh): the IoU bitmask on the device, then the
// serial greedy pass over it on the host (as torchvision's CUDA nms), the keep flags copied
// back to the device.
#include <cstdint>
#include <vector>

#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/nms.cuh"

namespace adnn::cuda {

using namespace launch_detail;

void nms(const Tensor& boxes, const Tensor& keep, double iou, double offset) {
  const int64_t n = boxes.size(0);
  if (n == 0) return;
  constexpr int B = common::kNmsBlock;
  const int64_t col_blocks = (n + B - 1) / B;
  ADNN_CHECK(col_blocks <= 65535, "nms (cuda): ", n, " boxes is more than the grid allows (", 65535 * B, ")");
  Tensor mask = empty({n, col_blocks}, TensorOptions(DType::i64, kCUDA));
  float_types(boxes.dtype(), "nms", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::nms_mask_kernel<T>, dim3(unsigned(col_blocks), unsigned(col_blocks)), dim3(B), 0, stream(),
                ptr<T>(boxes), n, T(iou), T(offset), ptr<int64_t>(mask), col_blocks);
  });
  const Tensor host = mask.to(kCPU);
  const auto* words = reinterpret_cast<const uint64_t*>(host.data_ptr<int64_t>());
  std::vector<uint64_t> removed(size_t(col_blocks), 0);
  Tensor flags_t = zeros({n}, TensorOptions(DType::u8));
  uint8_t* flags = flags_t.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t blk = i / B, bit = i % B;
    if ((removed[size_t(blk)] >> bit) & 1ULL) continue;
    flags[i] = 1;
    const uint64_t* row = words + i * col_blocks;
    for (int64_t j = blk; j < col_blocks; ++j) removed[size_t(j)] |= row[j];
  }
  Tensor dst = keep;  // a handle on the same storage
  dst.copy_(flags_t.to(keep.device()));
}

}  // namespace adnn::cuda
