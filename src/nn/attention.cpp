// Attention modules (include/adnn/nn/attention.hpp).
#include <adnn/nn/attention.hpp>

#include <cmath>

namespace adnn::nn {

LayerNorm::LayerNorm(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", ones({dim}));
  bias = register_parameter("bias", zeros({dim}));
}
Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, {weight.size(0)}, weight, bias, eps); }

// ---------------------------------------------------------------- CBAM
ChannelAttention::ChannelAttention(int64_t channels, int64_t reduced) {
  fc1 = register_module("fc1", std::make_shared<Conv2d>(Conv2dOptions(channels, reduced, 1).bias(false)));
  fc2 = register_module("fc2", std::make_shared<Conv2d>(Conv2dOptions(reduced, channels, 1).bias(false)));
}

Tensor ChannelAttention::forward(const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(3), R = fc1->weight.size(0);
  Tensor pooled = channel_pool2d(x);                                   // (N, 2, C): mean, max
  Tensor h = relu(linear(pooled, fc1->weight.reshape({R, C})));         // (N, 2, R): both in one GEMM
  Tensor a = sum(linear(h, fc2->weight.reshape({C, R})), {1});          // (N, C)
  return sigmoid_gate(x, a.reshape({N, 1, 1, C}));                      // (N, H, W, C)
}

ConvBn::ConvBn(int64_t in, int64_t out, int64_t k) {
  conv = register_module("conv", std::make_shared<Conv2d>(Conv2dOptions(in, out, k).padding((k - 1) / 2).bias(false)));
  bn = register_module("bn", std::make_shared<BatchNorm2d>(out));
}
Tensor ConvBn::forward(const Tensor& x) { return (*bn)((*conv)(x)); }

SpatialAttention::SpatialAttention(int64_t kernel) {
  conv = register_module("conv", std::make_shared<ConvBn>(2, 1, kernel));
}
Tensor SpatialAttention::forward(const Tensor& x) {
  Tensor maps = spatial_pool2d(x);       // (N, H, W, 2): mean, max over C
  return sigmoid_gate(x, (*conv)(maps));  // gate (N, H, W, 1)
}

CBAM::CBAM(int64_t channels, int64_t reduction, int64_t spatial_kernel) {
  ADNN_CHECK(channels > 0 && reduction > 0, "CBAM: bad channels ", channels, " / reduction ", reduction);
  const int64_t reduced = std::max<int64_t>(1, int64_t(std::lround(double(channels) / double(reduction))));
  channel = register_module("channel", std::make_shared<ChannelAttention>(channels, reduced));
  spatial = register_module("spatial", std::make_shared<SpatialAttention>(spatial_kernel));
}
Tensor CBAM::forward(const Tensor& x) {
  ADNN_CHECK(x.dim() == 4 && x.size(3) == channel->fc1->weight.size(3), "CBAM: expected (N, H, W, ",
             channel->fc1->weight.size(3), ") input, got ", x.desc());
  return (*spatial)((*channel)(x));
}

// ---------------------------------------------------------------- multi-head attention
MultiheadAttention::MultiheadAttention(int64_t e, int64_t h, double p) : embed_dim(e), num_heads(h), dropout(p) {
  ADNN_CHECK(e > 0 && h > 0 && e % h == 0, "MultiheadAttention: embed_dim ", e, " must be divisible by num_heads ", h);
  const double a = std::sqrt(6.0 / double(e + 3 * e));  // xavier_uniform over (3E, E), as torch
  in_proj_weight = register_parameter("in_proj_weight", uniform({3 * e, e}, -a, a));
  in_proj_bias = register_parameter("in_proj_bias", zeros({3 * e}));
  out_proj = register_module("out_proj", std::make_shared<Linear>(e, e));
  {
    NoGradGuard ng;
    out_proj->bias.zero_();
  }
}

Tensor MultiheadAttention::forward(const Tensor& x, const Tensor& key_padding_mask) {
  ADNN_CHECK(x.dim() == 3 && x.size(2) == embed_dim, "MultiheadAttention: expected (B, L, ", embed_dim,
             ") tokens, got ", x.desc());
  const int64_t B = x.size(0), L = x.size(1), E = embed_dim, H = num_heads, Dh = E / H;
  Tensor qkv = linear(x, in_proj_weight, in_proj_bias)     // (B, L, 3E)
                   .reshape({B, L, 3, H, Dh})
                   .permute({2, 0, 3, 1, 4});               // (3, B, H, L, Dh)
  Tensor o = scaled_dot_product_attention(qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2), key_padding_mask,
                                          training_ ? dropout : 0.0);  // (B, H, L, Dh)
  return (*out_proj)(o.permute({0, 2, 1, 3}).reshape({B, L, E}));    // (B, L, E)
}

// ---------------------------------------------------------------- encoder
TransformerEncoderLayer::TransformerEncoderLayer(const TransformerOptions& o) {
  self_attn = register_module("self_attn", std::make_shared<MultiheadAttention>(o.d_model, o.nhead, o.dropout));
  linear1 = register_module("linear1", std::make_shared<Linear>(o.d_model, o.dim_feedforward));
  linear1->epilogue = GemmEpilogue::bias_gelu;  // GELU fused into linear1's GEMM epilogue
  dropout = register_module("dropout", std::make_shared<Dropout>(o.dropout));
  linear2 = register_module("linear2", std::make_shared<Linear>(o.dim_feedforward, o.d_model));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(o.d_model, o.layer_norm_eps));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(o.d_model, o.layer_norm_eps));
  dropout1 = register_module("dropout1", std::make_shared<Dropout>(o.dropout));
  dropout2 = register_module("dropout2", std::make_shared<Dropout>(o.dropout));
}

Tensor TransformerEncoderLayer::forward(const Tensor& x, const Tensor& key_padding_mask) {
  Tensor y = x + (*dropout1)(self_attn->forward((*norm1)(x), key_padding_mask));                // (B, L, E)
  return y + (*dropout2)((*linear2)((*dropout)((*linear1)((*norm2)(y)))));  // (B, L, E); linear1 applies GELU
}

TransformerEncoder::TransformerEncoder(const TransformerOptions& o, int64_t num_layers, bool final_norm) {
  auto list = register_module("layers", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < num_layers; ++i) layers.push_back(list->add(std::make_shared<TransformerEncoderLayer>(o)));
  if (final_norm) norm = register_module("norm", std::make_shared<LayerNorm>(o.d_model, o.layer_norm_eps));
}

Tensor TransformerEncoder::forward(const Tensor& x, const Tensor& key_padding_mask) {
  Tensor y = x;
  for (auto& l : layers) y = l->forward(y, key_padding_mask);
  return norm ? (*norm)(y) : y;
}

PositionalEmbedding::PositionalEmbedding(int64_t length, int64_t dim) {
  weight = register_parameter("weight", randn({1, length, dim}) * 0.02);
}
Tensor PositionalEmbedding::forward(const Tensor& x) {
  ADNN_CHECK(x.dim() == 3 && x.size(1) == weight.size(1) && x.size(2) == weight.size(2),
             "PositionalEmbedding: expected (B, ", weight.size(1), ", ", weight.size(2), ") tokens, got ", x.desc());
  return x + weight;
}

}  // namespace adnn::nn
