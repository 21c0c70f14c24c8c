// Test-time augmentation (include/adnn/nn/tta.hpp).
#include <adnn/core/error.hpp>
#include <adnn/nn/tta.hpp>
#include <adnn/ops/ops.hpp>

#include <algorithm>

namespace adnn::nn {

Tta parse_tta(const std::string& s, const std::string& what) {
  if (s == "none") return Tta::none;
  if (s == "flip") return Tta::flip;
  if (s == "tencrop") return Tta::tencrop;
  ADNN_FAIL(what, " takes none|flip|tencrop, got '", s, "'");
}

const char* tta_name(Tta t) {
  return t == Tta::flip ? "flip" : t == Tta::tencrop ? "tencrop" : "none";
}

Tensor hflip_nhwc(const Tensor& x) {
  ADNN_CHECK(x.defined() && x.dim() == 4, "hflip_nhwc: x must be a (N, H, W, C) tensor, got ",
             x.defined() ? shape_str(x.sizes()) : std::string("undefined"));
  const int64_t W = x.size(2);
  // the reversed index W-1 … 0, made where x lives: no host copy, so a CUDA graph can capture it
  return index_select(x, 2, arange(double(W - 1), -1.0, -1.0, TensorOptions(DType::i64, x.device())));  // (N, H, W, C)
}

std::vector<Tensor> five_crops_nhwc(const Tensor& x) {
  ADNN_CHECK(x.defined() && x.dim() == 4, "five_crops_nhwc: x must be a (N, H, W, C) tensor, got ",
             x.defined() ? shape_str(x.sizes()) : std::string("undefined"));
  const int64_t H = x.size(1), W = x.size(2);
  // the window: d = 2·floor(S/24) pixels off each side S (48 -> 44), at least 2 where S >= 3;
  // d even, so the centre crop is centred exactly
  auto off = [](int64_t S) { return S < 3 ? int64_t(0) : std::max<int64_t>(2, 2 * (S / 24)); };
  const int64_t h = H - off(H), w = W - off(W);
  const int64_t corners[5][2] = {{0, 0}, {0, W - w}, {H - h, 0}, {H - h, W - w}, {(H - h) / 2, (W - w) / 2}};
  std::vector<Tensor> crops;
  for (const auto& [y0, x0] : corners)  // (N, h, w, C) -> (N, H, W, C)
    crops.push_back(interpolate(x.narrow(1, y0, h).narrow(2, x0, w).contiguous(), H, W, InterpMode::bilinear));
  return crops;
}

Tensor predict_probabilities(Module& model, const Tensor& x, Tta tta) {
  if (tta == Tta::tencrop) {
    Tensor p;  // (N, K): the sum over the ten views, then their mean
    for (const Tensor& c : five_crops_nhwc(x))
      for (const Tensor& v : {c, hflip_nhwc(c)}) {
        Tensor q = softmax(model(v), 1);  // (N, K)
        p = p.defined() ? p + q : q;
      }
    return p * 0.1;
  }
  Tensor p = softmax(model(x), 1);                                         // (N, K)
  if (tta == Tta::flip) p = (p + softmax(model(hflip_nhwc(x)), 1)) * 0.5;  // (N, K)
  return p;
}

}  // namespace adnn::nn
