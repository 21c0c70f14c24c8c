// CPU twin of kernels/nms.cuh: greedy non-maximum suppression in score order (the boxes
// come sorted), with the same overlap test (common::box_iou).
#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

void nms(const Tensor& boxes, const Tensor& keep, double iou, double offset) {
  const int64_t n = boxes.size(0);
  uint8_t* kp = keep.data_ptr<uint8_t>();
  float_dispatch(boxes.dtype(), "nms", [&](auto tag_) {
    using T = decltype(tag_);
    const T* b = boxes.data_ptr<T>();
    const T thr = T(iou), off = T(offset);
    for (int64_t i = 0; i < n; ++i) kp[i] = 1;
    for (int64_t i = 0; i < n; ++i) {
      if (!kp[i]) continue;
      for (int64_t j = i + 1; j < n; ++j)
        if (kp[j] && common::box_iou(b + i * 4, b + j * 4, off) > thr) kp[j] = 0;
    }
  });
}

}  // namespace adnn::cpu
