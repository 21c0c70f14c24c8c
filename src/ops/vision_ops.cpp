// Vision ops: the affine warp (interp family) and non-maximum suppression (nms family).
#include <algorithm>
#include <numeric>
#include <vector>

#include "ops/common.hpp"

namespace adnn {

using namespace ops_detail;

// ---------------------------------------------------------------- warp_affine
Tensor warp_affine(const Tensor& x, const Tensor& matrices, int64_t out_h, int64_t out_w, InterpMode mode) {
  check_defined("warp_affine", x, "input");
  check_defined("warp_affine", matrices, "matrices");
  check_floating("warp_affine", x);
  check_floating("warp_affine", matrices);
  ADNN_CHECK(x.dim() == 4, "warp_affine: input must be (N, H, W, C), got ", x.desc());
  ADNN_CHECK(matrices.dim() == 3 && matrices.size(1) == 2 && matrices.size(2) == 3,
             "warp_affine: matrices must be (B, 2, 3), got ", matrices.desc());
  const int64_t N = x.size(0), B = matrices.size(0);
  ADNN_CHECK(N == B || N == 1, "warp_affine: input ", x.desc(), " has ", N, " images for ", B,
             " matrices (give one image per matrix, or one image)");
  ADNN_CHECK(out_h > 0 && out_w > 0, "warp_affine: output size ", out_h, "x", out_w, " must be positive");
  ADNN_CHECK(x.size(1) > 0 && x.size(2) > 0, "warp_affine: empty input ", x.desc());
  // f16/bf16 read and written natively (f64 sums as for f32, one rounding); the backward's
  // atomic sums run in an f32 accumulator, rounded once
  const WarpGeom g{N, x.size(1), x.size(2), x.size(3), B, out_h, out_w, mode};
  const Tensor m = matrices.detach().to(x.device()).to(DType::f64).contiguous().reshape({B, 6});
  Tensor y = new_like(x, {B, out_h, out_w, x.size(3)});
  if (y.numel() > 0) backend::warp_affine_forward(x.detach().contiguous(), m, y, g);
  const Shape xs = x.sizes();
  autograd::record("warp_affine", {x}, y, [=](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = zeros(xs, TensorOptions(acc_dtype(gy.dtype()), gy.device()));
    if (gy.numel() > 0) backend::warp_affine_backward(gy.contiguous(), m, gx, g);
    return std::vector<Tensor>{gx.to(gy.dtype())};
  });
  return y;
}

// ---------------------------------------------------------------- nms
Tensor nms(const Tensor& boxes, const Tensor& scores, double iou_threshold, double offset) {
  check_defined("nms", boxes, "boxes");
  check_defined("nms", scores, "scores");
  check_devices("nms", {&boxes, &scores});
  check_floating("nms", boxes);
  check_floating("nms", scores);
  ADNN_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "nms: boxes must be (N, 4), got ", boxes.desc());
  ADNN_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0), "nms: scores must be (", boxes.size(0),
             ") for boxes ", boxes.desc(), ", got ", scores.desc());
  ADNN_CHECK(iou_threshold == iou_threshold, "nms: the IoU threshold is NaN");
  const int64_t n = boxes.size(0);
  const TensorOptions idx_opts(DType::i64, boxes.device());
  if (n == 0) return empty({0}, idx_opts);
  NoGradGuard ng;
  // the ranking on the host (a stable sort: equal scores keep their order)
  const std::vector<double> s = scores.detach().to(kCPU).to_vector();
  for (int64_t i = 0; i < n; ++i)
    ADNN_CHECK(s[size_t(i)] == s[size_t(i)], "nms: score ", i, " is NaN (scores ", scores.desc(), ")");
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[size_t(a)] > s[size_t(b)]; });
  Tensor b = boxes.detach();
  if (is_reduced(b.dtype())) b = b.to(DType::f32);
  Tensor sorted = index_select(b, 0, from_vector(order, {n}, idx_opts)).contiguous();  // (N, 4)
  Tensor keep = zeros({n}, TensorOptions(DType::u8, boxes.device()));
  backend::nms(sorted, keep, iou_threshold, offset);
  const Tensor kh = keep.to(kCPU);
  const uint8_t* kp = kh.data_ptr<uint8_t>();
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n; ++i)
    if (kp[i]) kept.push_back(order[size_t(i)]);
  return from_vector(kept, {int64_t(kept.size())}, idx_opts);
}

}  // namespace adnn
