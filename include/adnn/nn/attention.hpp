#pragma once
// Attention modules: CBAM (timm's CbamModule names), multi-head self-attention and the
// pre-norm Transformer encoder (torch.nn.MultiheadAttention / TransformerEncoderLayer names,
// batch_first), layer norm, GELU and a learnable positional embedding. Tokens are (B, L, E).
#include <adnn/nn/layers.hpp>

namespace adnn::nn {

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;  // (..., dim)
  Tensor weight, bias;
  double eps;
};

class GELU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return gelu(x); }
};

// CBAM channel attention: avg- and max-pooled descriptors (one fused pass) through a shared
// MLP fc1 (C -> C/r, no bias) → ReLU → fc2 (C/r -> C), summed, sigmoid, channel scale.
class ChannelAttention : public Module {
 public:
  ChannelAttention(int64_t channels, int64_t reduced);
  Tensor forward(const Tensor& x) override;  // (N, H, W, C) -> (N, H, W, C)
  std::shared_ptr<Conv2d> fc1, fc2;          // 1×1 convs, as timm
};

// Conv (k×k, no bias) followed by BN: timm's ConvNormAct without activation.
class ConvBn : public Module {
 public:
  ConvBn(int64_t in, int64_t out, int64_t k);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
};

// CBAM spatial attention: channel mean and max maps (one fused pass) → 7×7 conv + BN →
// sigmoid → spatial scale.
class SpatialAttention : public Module {
 public:
  explicit SpatialAttention(int64_t kernel = 7);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<ConvBn> conv;
};

// CBAM (Woo et al. 2018): channel attention, then spatial attention. reduced channels =
// max(1, round(C / reduction)).
class CBAM : public Module {
 public:
  CBAM(int64_t channels, int64_t reduction = 16, int64_t spatial_kernel = 7);
  Tensor forward(const Tensor& x) override;  // (N, H, W, C) -> (N, H, W, C)
  std::shared_ptr<ChannelAttention> channel;
  std::shared_ptr<SpatialAttention> spatial;
};

// Multi-head self-attention on (B, L, E) tokens with the fused attention kernel; parameters
// as torch.nn.MultiheadAttention: in_proj_weight (3E, E), in_proj_bias (3E), out_proj.
class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, double dropout = 0.0);
  Tensor forward(const Tensor& x) override { return forward(x, {}); }
  // key_padding_mask (B, L) bool, true = padding (ignored as a key)
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask);
  int64_t embed_dim, num_heads;
  double dropout;
  Tensor in_proj_weight, in_proj_bias;
  std::shared_ptr<Linear> out_proj;
};

struct TransformerOptions {
  int64_t d_model = 256, nhead = 8, dim_feedforward = 1024;
  double dropout = 0.1;
  double layer_norm_eps = 1e-5;
};

// Pre-norm encoder layer (torch's norm_first=True, GELU):
//   x = x + dropout1(self_attn(norm1(x)));  x = x + dropout2(linear2(dropout(gelu(linear1(norm2(x)))))).
class TransformerEncoderLayer : public Module {
 public:
  explicit TransformerEncoderLayer(const TransformerOptions& o);
  Tensor forward(const Tensor& x) override { return forward(x, {}); }
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask);
  std::shared_ptr<MultiheadAttention> self_attn;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<Dropout> dropout, dropout1, dropout2;
  std::shared_ptr<LayerNorm> norm1, norm2;
};

// A stack of encoder layers ("layers.0" …) with an optional final LayerNorm ("norm").
class TransformerEncoder : public Module {
 public:
  TransformerEncoder(const TransformerOptions& o, int64_t num_layers, bool final_norm = false);
  Tensor forward(const Tensor& x) override { return forward(x, {}); }
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask);
  std::vector<std::shared_ptr<TransformerEncoderLayer>> layers;
  std::shared_ptr<LayerNorm> norm;
};

// Learnable positional embedding added to (B, L, E) tokens; weight (1, L, E), N(0, 0.02²).
class PositionalEmbedding : public Module {
 public:
  PositionalEmbedding(int64_t length, int64_t dim);
  Tensor forward(const Tensor& x) override;
  Tensor weight;
};

}  // namespace adnn::nn
