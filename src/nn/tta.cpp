// Test-time augmentation (include/adnn/nn/tta.hpp).
#include <adnn/core/error.hpp>
#include <adnn/nn/tta.hpp>
#include <adnn/ops/ops.hpp>

namespace adnn::nn {

Tta parse_tta(const std::string& s, const std::string& what) {
  if (s == "none") return Tta::none;
  if (s == "flip") return Tta::flip;
  ADNN_FAIL(what, " takes none|flip, got '", s, "'");
}

const char* tta_name(Tta t) {
  return t == Tta::flip ? "flip" : "none";
}

Tensor hflip_nhwc(const Tensor& x) {
  ADNN_CHECK(x.defined() && x.dim() == 4, "hflip_nhwc: x must be a (N, H, W, C) tensor, got ",
             x.defined() ? shape_str(x.sizes()) : std::string("undefined"));
  const int64_t W = x.size(2);
  std::vector<int64_t> rev(static_cast<size_t>(W));
  for (int64_t i = 0; i < W; ++i) rev[size_t(i)] = W - 1 - i;
  return index_select(x, 2, from_vector(rev, {W}).to(x.device()));  // (N, H, W, C)
}

Tensor predict_probabilities(Module& model, const Tensor& x, Tta tta) {
  Tensor p = softmax(model(x), 1);                                         // (N, K)
  if (tta == Tta::flip) p = (p + softmax(model(hflip_nhwc(x)), 1)) * 0.5;  // (N, K)
  return p;
}

}  // namespace adnn::nn
