#pragma once
// Non-maximum suppression's shared piece: the overlap of two boxes, used by the kernel
// (kernels/nms.cuh) and its CPU twin (src/cpu/nms.cpp). Boxes are (x1, y1, x2, y2);
// `offset` is added to every width and height (1 for the pixel-inclusive convention of
// Pytorch_Retinaface's py_cpu_nms, 0 for torchvision's).
#include "common/mul_rn.hpp"

namespace adnn::common {

// Intersection over union, the division written as the reference's: inter / (a + b - inter).
// T: float or double.
template <class T>
ADNN_HD T box_iou(const T* a, const T* b, T offset) {
  const T xx1 = a[0] > b[0] ? a[0] : b[0], yy1 = a[1] > b[1] ? a[1] : b[1];
  const T xx2 = a[2] < b[2] ? a[2] : b[2], yy2 = a[3] < b[3] ? a[3] : b[3];
  const T w = xx2 - xx1 + offset, h = yy2 - yy1 + offset;
  // mul_rn: no product is fused into the sums on a GPU, so an IoU near the threshold
  // decides as on the CPU
  const T inter = mul_rn(w > T(0) ? w : T(0), h > T(0) ? h : T(0));
  const T area_a = mul_rn(a[2] - a[0] + offset, a[3] - a[1] + offset);
  const T area_b = mul_rn(b[2] - b[0] + offset, b[3] - b[1] + offset);
  return inter / (area_a + area_b - inter);
}

// The bitmask scheme's block: boxes per column block, bits per mask word.
constexpr int kNmsBlock = 64;

}  // namespace adnn::common
