// Grad-CAM / Grad-CAM++, expected gradients and integrated gradients (include/adnn/explain/explain.hpp).
#include <adnn/explain/explain.hpp>
#include <adnn/autograd/autograd.hpp>
#include <adnn/nn/adnn_fer.hpp>

#include <algorithm>
#include <cmath>
#include <functional>

namespace adnn::explain {

namespace {

// Turns requires_grad off on every parameter of the model for its lifetime (restored after):
// an explanation needs gradients w.r.t. activations or inputs only.
class FrozenParameters {
 public:
  explicit FrozenParameters(nn::Module& m) {
    for (Tensor& p : m.parameters())
      if (p.requires_grad()) {
        p.requires_grad_(false);
        frozen_.push_back(p);
      }
  }
  ~FrozenParameters() {
    for (Tensor& p : frozen_) p.requires_grad_(true);
  }
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<Tensor> frozen_;
};

void check_images(const char* who, const Tensor& x, const char* name) {
  ADNN_CHECK(x.defined() && x.dim() == 4 && x.size(0) >= 1 && is_floating(x.dtype()), who, ": ", name,
             " must be a floating (N, H, W, C) batch of images, got ", x.defined() ? x.desc() : "an undefined tensor");
}

// The explained class of each image: `given` (N entries, or one for all), else the argmax.
std::vector<int64_t> resolve_classes(const char* who, const std::vector<int64_t>& given, const std::vector<double>& logits,
                                     int64_t N, int64_t K) {
  ADNN_CHECK(given.empty() || int64_t(given.size()) == N || given.size() == 1, who, ": ", given.size(),
             " classes given for ", N, " images (give one per image, one for all, or none)");
  std::vector<int64_t> out(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    if (given.empty()) {
      const double* row = logits.data() + n * K;
      out[size_t(n)] = int64_t(std::max_element(row, row + K) - row);
    } else {
      const int64_t k = given.size() == 1 ? given[0] : given[size_t(n)];
      ADNN_CHECK(k >= 0 && k < K, who, ": class ", k, " is out of range for a model with ", K, " classes");
      out[size_t(n)] = k;
    }
  }
  return out;
}

// (N, K) one-hot seed gradient for backward from the logits.
Tensor one_hot_seed(const std::vector<int64_t>& classes, int64_t K, const Tensor& like) {
  std::vector<double> v(classes.size() * size_t(K), 0.0);
  for (size_t n = 0; n < classes.size(); ++n) v[n * size_t(K) + size_t(classes[n])] = 1.0;
  return from_vector(v, {int64_t(classes.size()), K}, TensorOptions().dtype(like.dtype())).to(like.device());
}

Tensor check_logits(const char* who, const Tensor& logits, int64_t N) {
  ADNN_CHECK(logits.dim() == 2 && logits.size(0) == N, who, ": the model must return logits (N, K) for ", N,
             " images, got ", logits.desc());
  return logits;
}

}  // namespace

const char* cam_method_name(CamMethod m) { return m == CamMethod::gradcam ? "gradcam" : "gradcam++"; }

const char* region_name(Region r) {
  switch (r) {
    case Region::eyes_brows: return "eyes/brows";
    case Region::nose: return "nose";
    case Region::mouth: return "mouth";
    default: return "other";
  }
}

std::vector<double> upsample_bilinear(const std::vector<double>& map, int64_t h, int64_t w, int64_t H, int64_t W) {
  ADNN_CHECK(h >= 1 && w >= 1 && H >= 1 && W >= 1 && int64_t(map.size()) == h * w, "upsample_bilinear: a map of ",
             map.size(), " values is not (", h, ", ", w, ") or the output (", H, ", ", W, ") is empty");
  // source coordinate of an output pixel: (o + ½)·in/out − ½, clamped at 0 (torch's
  // area_pixel_compute_source_index for align_corners=False); the upper tap clamped to the edge
  auto taps = [](int64_t out, int64_t in) {
    std::vector<std::pair<int64_t, double>> t(static_cast<size_t>(out));
    const double scale = double(in) / double(out);
    for (int64_t o = 0; o < out; ++o) {
      double s = (double(o) + 0.5) * scale - 0.5;
      if (s < 0) s = 0;
      int64_t i0 = std::min<int64_t>(int64_t(s), in - 1);
      t[size_t(o)] = {i0, s - double(i0)};
    }
    return t;
  };
  const auto ty = taps(H, h), tx = taps(W, w);
  std::vector<double> out(size_t(H * W));
  for (int64_t oy = 0; oy < H; ++oy) {
    const auto [y0, ly] = ty[size_t(oy)];
    const int64_t y1 = std::min(y0 + 1, h - 1);
    for (int64_t ox = 0; ox < W; ++ox) {
      const auto [x0, lx] = tx[size_t(ox)];
      const int64_t x1 = std::min(x0 + 1, w - 1);
      const double top = (1 - lx) * map[size_t(y0 * w + x0)] + lx * map[size_t(y0 * w + x1)];
      const double bot = (1 - lx) * map[size_t(y1 * w + x0)] + lx * map[size_t(y1 * w + x1)];
      out[size_t(oy * W + ox)] = (1 - ly) * top + ly * bot;
    }
  }
  return out;
}

void normalize_min_max(std::vector<double>& map) {
  if (map.empty()) return;
  const double lo = *std::min_element(map.begin(), map.end());
  for (double& v : map) v -= lo;
  const double hi = *std::max_element(map.begin(), map.end());
  for (double& v : map) v /= 1e-7 + hi;
}

// ---------------------------------------------------------------- Grad-CAM
CamResult grad_cam(nn::Module& model, const Tensor& x, const CamOptions& o) {
  check_images("grad_cam", x, "x");
  ADNN_CHECK(!o.layers.empty(), "grad_cam: name at least one layer (a module of the model)");
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2);
  const size_t L = o.layers.size();
  std::vector<nn::Module*> mods;
  for (const std::string& name : o.layers) mods.push_back(&model.get_submodule(name));

  FrozenParameters frozen(model);
  autograd::EnableGradGuard grad_on;
  std::vector<Tensor> acts(L), grads(L);
  {
    nn::Module::HookGuard hooks;
    for (size_t i = 0; i < L; ++i)
      hooks.add(mods[i]->register_forward_hook([&, i](nn::Module&, const Tensor&, const Tensor& y) -> Tensor {
        ADNN_CHECK(y.dim() == 4 && y.size(0) == N, "grad_cam: the output of '", o.layers[i], "' is ", y.desc(),
                   ", not a (N, h, w, c) map of the ", N, " images");
        ADNN_CHECK(!acts[i].defined(), "grad_cam: module '", o.layers[i], "' ran more than once in one forward pass");
        // With the parameters frozen, the first hooked map does not require grad: it becomes a
        // leaf that does (same values), so backward stops there instead of reaching the input.
        Tensor out = y, replacement;
        if (!y.requires_grad()) {
          out = y.detach();
          out.requires_grad_(true);
          replacement = out;
        }
        acts[i] = out.detach();
        out.register_hook([&grads, i](const Tensor& g) {
          grads[i] = g.detach();
          return Tensor();
        });
        return replacement;
      }));
    Tensor logits = check_logits("grad_cam", model(x), N);  // (N, K)
    for (size_t i = 0; i < L; ++i)
      ADNN_CHECK(acts[i].defined(), "grad_cam: module '", o.layers[i], "' did not run in the forward pass");
    const int64_t K = logits.size(1);
    CamResult r;
    r.logits = logits.detach().to(kCPU).to(DType::f32).contiguous();
    r.probs = softmax(r.logits, 1);
    r.classes = resolve_classes("grad_cam", o.classes, r.logits.to_vector(), N, K);
    ADNN_CHECK(logits.requires_grad(), "grad_cam: the logits do not depend on the named layers");
    logits.backward(one_hot_seed(r.classes, K, logits));
    for (size_t i = 0; i < L; ++i) {
      // the class score does not depend on this map: zero gradient (an all-zero CAM)
      if (!grads[i].defined()) grads[i] = zeros_like(acts[i]);
    }

    // per layer: weights (N, c), the map (N, h, w), ReLU, normalisation, upsampling
    std::vector<std::vector<double>> upsampled(L);  // (N, H, W) each
    for (size_t i = 0; i < L; ++i) {
      const int64_t h = acts[i].size(1), w = acts[i].size(2), c = acts[i].size(3), hw = h * w;
      const std::vector<double> A = acts[i].to(kCPU).contiguous().to_vector();   // (N, h, w, c)
      const std::vector<double> G = grads[i].to(kCPU).contiguous().to_vector();  // (N, h, w, c)
      std::vector<double> maps(size_t(N * hw)), up;
      up.reserve(size_t(N * H * W));
      for (int64_t n = 0; n < N; ++n) {
        const double* a = A.data() + n * hw * c;
        const double* g = G.data() + n * hw * c;
        std::vector<double> wts(size_t(c), 0.0);
        if (o.method == CamMethod::gradcam) {
          for (int64_t p = 0; p < hw; ++p)
            for (int64_t k = 0; k < c; ++k) wts[size_t(k)] += g[p * c + k];
          for (double& v : wts) v /= double(hw);
        } else {
          // Grad-CAM++ (Chattopadhay et al., eq. 19, as pytorch-grad-cam):
          // α = g² / (2 g² + Σ_hw A · g³ + 1e-6), α = 0 where g = 0; w = Σ_hw relu(g) · α
          std::vector<double> sum_a(size_t(c), 0.0);
          for (int64_t p = 0; p < hw; ++p)
            for (int64_t k = 0; k < c; ++k) sum_a[size_t(k)] += a[p * c + k];
          for (int64_t p = 0; p < hw; ++p)
            for (int64_t k = 0; k < c; ++k) {
              const double gv = g[p * c + k];
              if (gv == 0) continue;
              const double g2 = gv * gv, g3 = g2 * gv;
              const double alpha = g2 / (2 * g2 + sum_a[size_t(k)] * g3 + 1e-6);
              wts[size_t(k)] += std::max(gv, 0.0) * alpha;
            }
        }
        std::vector<double> m(static_cast<size_t>(hw));
        for (int64_t p = 0; p < hw; ++p) {
          double s = 0;
          for (int64_t k = 0; k < c; ++k) s += wts[size_t(k)] * a[p * c + k];
          m[size_t(p)] = std::max(s, 0.0);
        }
        std::copy(m.begin(), m.end(), maps.begin() + n * hw);
        normalize_min_max(m);
        const std::vector<double> u = upsample_bilinear(m, h, w, H, W);
        up.insert(up.end(), u.begin(), u.end());
      }
      r.layer_maps.push_back(from_vector(maps, {N, h, w}));
      r.layer_cams.push_back(from_vector(up, {N, H, W}));
      upsampled[i] = std::move(up);
    }
    // over layers: ReLU, mean, normalisation (pytorch-grad-cam's aggregate_multi_layers)
    std::vector<double> cam(size_t(N * H * W), 0.0);
    for (int64_t n = 0; n < N; ++n) {
      std::vector<double> m(size_t(H * W), 0.0);
      for (size_t i = 0; i < L; ++i)
        for (int64_t p = 0; p < H * W; ++p) m[size_t(p)] += std::max(upsampled[i][size_t(n * H * W + p)], 0.0);
      for (double& v : m) v /= double(L);
      normalize_min_max(m);
      std::copy(m.begin(), m.end(), cam.begin() + n * H * W);
    }
    r.cam = from_vector(cam, {N, H, W});
    return r;
  }
}

std::vector<std::string> default_cam_layers(nn::Module& model) {
  auto* fer = dynamic_cast<nn::AdnnFer*>(&model);
  ADNN_CHECK(fer, "default_cam_layers: not an ADNN-FER model; name the layers to explain");
  if (fer->cbam_stage5 && fer->cbam_head) return {"cbam_stage5", "cbam_head"};
  if (fer->effnet) return {"blocks.4", "blocks." + std::to_string(fer->effnet->stage_channels().size() - 1)};
  if (fer->vnano) return {"block3", "block4"};
  return {"layer3", "layer4"};
}

// ---------------------------------------------------------------- path attributions
namespace {

// Σ_s (x − r_s) ⊙ ∂f_cls/∂x(z_s) with z_s = r_s + α_s (x − r_s) (+ noise_s), for one image
// x (1, H, W, C) and references refs (S, H, W, C) on x's device: (H·W·C) host values.
std::vector<double> path_gradient_sum(nn::Module& model, const Tensor& x, const Tensor& refs,
                                      const std::vector<double>& alphas, const std::vector<double>& noise, int64_t cls,
                                      int64_t batch) {
  const int64_t S = refs.size(0), H = x.size(1), W = x.size(2), C = x.size(3), D = H * W * C;
  std::vector<double> acc(size_t(D), 0.0);
  for (int64_t s0 = 0; s0 < S; s0 += batch) {
    const int64_t b = std::min(batch, S - s0);
    Tensor r = refs.narrow(0, s0, b);                                          // (b, H, W, C)
    Tensor diff = sub(x, r);                                                   // (b, H, W, C)
    std::vector<double> al(alphas.begin() + s0, alphas.begin() + s0 + b);
    Tensor a = from_vector(al, {b, 1, 1, 1}, TensorOptions().dtype(x.dtype())).to(x.device());
    Tensor z = add(r, mul(diff, a));
    if (!noise.empty()) {
      std::vector<double> nz(noise.begin() + s0 * D, noise.begin() + (s0 + b) * D);
      z = add(z, from_vector(nz, {b, H, W, C}, TensorOptions().dtype(x.dtype())).to(x.device()));
    }
    z = z.detach();
    z.requires_grad_(true);
    Tensor logits = check_logits("attribution", model(z), b);
    logits.backward(one_hot_seed(std::vector<int64_t>(size_t(b), cls), logits.size(1), logits));
    ADNN_CHECK(z.grad().defined(), "attribution: the logits do not depend on the input");
    Tensor contrib = sum(mul(diff, z.grad()), {0}).to(kCPU).contiguous();  // (H, W, C)
    const std::vector<double> cv = contrib.to_vector();
    for (int64_t i = 0; i < D; ++i) acc[size_t(i)] += cv[size_t(i)];
  }
  return acc;
}

}  // namespace

Tensor batch_logits(nn::Module& model, const Tensor& x, int64_t batch) {
  check_images("batch_logits", x, "x");
  ADNN_CHECK(batch >= 1, "batch_logits: batch ", batch, " < 1");
  NoGradGuard ng;
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < x.size(0); i += batch)
    parts.push_back(check_logits("attribution", model(x.narrow(0, i, std::min(batch, x.size(0) - i))),
                                 std::min(batch, x.size(0) - i))
                        .to(kCPU)
                        .to(DType::f32));
  return parts.size() == 1 ? parts[0].contiguous() : cat(parts, 0).contiguous();
}

namespace {

Tensor logits_of(nn::Module& model, const Tensor& x, int64_t batch) { return batch_logits(model, x, batch); }

Attribution finish(const char* who, nn::Module& model, const Tensor& x, const std::vector<int64_t>& classes,
                   int64_t batch) {
  Attribution r;
  r.logits = logits_of(model, x, batch);
  r.probs = softmax(r.logits, 1);
  const std::vector<double> lv = r.logits.to_vector();
  const int64_t N = x.size(0), K = r.logits.size(1);
  r.classes = resolve_classes(who, classes, lv, N, K);
  for (int64_t n = 0; n < N; ++n) r.f_x.push_back(lv[size_t(n * K + r.classes[size_t(n)])]);
  return r;
}

void set_attr(Attribution& r, const std::vector<double>& all, int64_t N, int64_t H, int64_t W, int64_t C) {
  r.attr = from_vector(all, {N, H, W, C});
  r.pixel = sum(r.attr, {3});
}

}  // namespace

Attribution expected_gradients(nn::Module& model, const Tensor& x, const Tensor& background,
                               const std::vector<int64_t>& classes, const ShapOptions& o) {
  check_images("expected_gradients", x, "x");
  check_images("expected_gradients", background, "background");
  ADNN_CHECK(background.size(1) == x.size(1) && background.size(2) == x.size(2) && background.size(3) == x.size(3),
             "expected_gradients: background ", background.desc(), " and images ", x.desc(), " differ in (H, W, C)");
  ADNN_CHECK(o.samples >= 1 && o.batch >= 1 && o.noise_std >= 0, "expected_gradients: samples (", o.samples,
             ") and batch (", o.batch, ") must be >= 1 and noise_std (", o.noise_std, ") >= 0");
  const int64_t N = x.size(0), B = background.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  ADNN_CHECK(!o.stratified || o.samples % B == 0, "expected_gradients: stratified sampling needs samples (",
             o.samples, ") to be a multiple of the background size (", B, ")");
  FrozenParameters frozen(model);
  Attribution r = finish("expected_gradients", model, x, classes, o.batch);
  const Tensor bg = background.to(x.device()).to(x.dtype());
  const Tensor bg_logits = o.background_logits.defined() ? o.background_logits.to(kCPU).to(DType::f32).contiguous()
                                                         : logits_of(model, bg, o.batch);  // (B, K)
  ADNN_CHECK(bg_logits.dim() == 2 && bg_logits.size(0) == B && bg_logits.size(1) == r.logits.size(1),
             "expected_gradients: background_logits ", bg_logits.desc(), " are not (", B, ", ", r.logits.size(1), ")");
  const std::vector<double> bl = bg_logits.to_vector();
  const int64_t K = bg_logits.size(1);
  for (int64_t n = 0; n < N; ++n) {
    double m = 0;
    for (int64_t b = 0; b < B; ++b) m += bl[size_t(b * K + r.classes[size_t(n)])];
    r.f_ref.push_back(m / double(B));
  }
  Generator gen(o.seed);
  autograd::EnableGradGuard grad_on;
  std::vector<double> all;
  all.reserve(size_t(N * H * W * C));
  for (int64_t n = 0; n < N; ++n) {
    std::vector<int64_t> idx(size_t(o.samples));
    std::vector<double> alphas(size_t(o.samples)), noise;
    const int64_t per = o.samples / B;
    for (int64_t s = 0; s < o.samples; ++s) {
      if (o.stratified) {
        idx[size_t(s)] = s / per;
        alphas[size_t(s)] = (double(s % per) + 0.5) / double(per);
      } else {
        idx[size_t(s)] = int64_t(gen.next_u64() % uint64_t(B));
        alphas[size_t(s)] = gen.uniform();
      }
    }
    if (o.noise_std > 0) {
      noise.resize(size_t(o.samples * H * W * C));
      for (double& v : noise) v = o.noise_std * gen.normal();
    }
    const Tensor refs = index_select(bg, 0, from_vector(idx, {o.samples}).to(x.device()));  // (S, H, W, C)
    std::vector<double> acc = path_gradient_sum(model, x.narrow(0, n, 1), refs, alphas, noise,
                                                r.classes[size_t(n)], o.batch);
    for (double& v : acc) v /= double(o.samples);
    all.insert(all.end(), acc.begin(), acc.end());
  }
  set_attr(r, all, N, H, W, C);
  return r;
}

Attribution integrated_gradients(nn::Module& model, const Tensor& x, const Tensor& baseline,
                                 const std::vector<int64_t>& classes, int64_t steps, int64_t batch) {
  check_images("integrated_gradients", x, "x");
  check_images("integrated_gradients", baseline, "baseline");
  ADNN_CHECK((baseline.size(0) == 1 || baseline.size(0) == x.size(0)) && baseline.size(1) == x.size(1) &&
                 baseline.size(2) == x.size(2) && baseline.size(3) == x.size(3),
             "integrated_gradients: baseline ", baseline.desc(), " does not match images ", x.desc(),
             " (give 1 or N baselines of the same (H, W, C))");
  ADNN_CHECK(steps >= 1 && batch >= 1, "integrated_gradients: steps (", steps, ") and batch (", batch,
             ") must be >= 1");
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  FrozenParameters frozen(model);
  Attribution r = finish("integrated_gradients", model, x, classes, batch);
  const Tensor base = baseline.to(x.device()).to(x.dtype());
  const Tensor base_logits = logits_of(model, base, batch);
  const std::vector<double> bl = base_logits.to_vector();
  const int64_t K = base_logits.size(1);
  std::vector<double> alphas(static_cast<size_t>(steps));
  for (int64_t k = 0; k < steps; ++k) alphas[size_t(k)] = (double(k) + 0.5) / double(steps);
  autograd::EnableGradGuard grad_on;
  std::vector<double> all;
  all.reserve(size_t(N * H * W * C));
  for (int64_t n = 0; n < N; ++n) {
    const int64_t bi = baseline.size(0) == 1 ? 0 : n;
    r.f_ref.push_back(bl[size_t(bi * K + r.classes[size_t(n)])]);
    const Tensor refs = base.narrow(0, bi, 1).expand({steps, H, W, C}).contiguous();  // (steps, H, W, C)
    std::vector<double> acc =
        path_gradient_sum(model, x.narrow(0, n, 1), refs, alphas, {}, r.classes[size_t(n)], batch);
    for (double& v : acc) v /= double(steps);
    all.insert(all.end(), acc.begin(), acc.end());
  }
  set_attr(r, all, N, H, W, C);
  return r;
}

// ---------------------------------------------------------------- facial regions
Landmarks canonical_landmarks(int64_t size) {
  // ArcFace's 112×112 five-point template, moved by the similarity that puts its eyes at
  // (0.325 S, 0.375 S) and (0.675 S, 0.375 S): where the eyes of the mean FER2013 val face are
  // (dark blobs at about x 15.5 and 32, y 18 of 48, over 898 faces); the ArcFace crop itself
  // has them lower (y 0.46 S), FER2013's faces are framed tighter.
  static constexpr double t[10] = {38.2946, 51.6963, 73.5318, 51.5014, 56.0252,
                                   71.7366, 41.5493, 92.3655, 70.7299, 92.2041};
  const double S = double(size);
  const double dst_eyes[4] = {0.325 * S, 0.375 * S, 0.675 * S, 0.375 * S};
  // similarity from the template's two eyes to the target eyes: z -> a z + b over complex numbers
  const double sx = t[2] - t[0], sy = t[3] - t[1], dx = dst_eyes[2] - dst_eyes[0], dy = dst_eyes[3] - dst_eyes[1];
  const double den = sx * sx + sy * sy;
  const double ar = (dx * sx + dy * sy) / den, ai = (dy * sx - dx * sy) / den;
  const double br = dst_eyes[0] - (ar * t[0] - ai * t[1]), bi = dst_eyes[1] - (ai * t[0] + ar * t[1]);
  Landmarks lm{};
  for (int i = 0; i < 5; ++i) {
    lm[size_t(2 * i)] = ar * t[2 * i] - ai * t[2 * i + 1] + br;
    lm[size_t(2 * i + 1)] = ai * t[2 * i] + ar * t[2 * i + 1] + bi;
  }
  return lm;
}

std::vector<Region> region_mask(const Landmarks& lm, int64_t H, int64_t W) {
  const double lex = lm[0], ley = lm[1], rex = lm[2], rey = lm[3], nx = lm[4], ny = lm[5];
  const double mlx = lm[6], mly = lm[7], mrx = lm[8], mry = lm[9];
  const double d = std::max(1e-6, std::hypot(rex - lex, rey - ley));
  const double ye = 0.5 * (ley + rey), ym = 0.5 * (mly + mry);
  const double ex0 = std::min(lex, rex) - 0.45 * d, ex1 = std::max(lex, rex) + 0.45 * d;
  std::vector<Region> mask(size_t(H * W), Region::other);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const double px = double(x) + 0.5, py = double(y) + 0.5;  // pixel centre
      Region r = Region::other;
      if (px >= ex0 && px <= ex1 && py >= ye - 0.55 * d && py < ye + 0.25 * d)
        r = Region::eyes_brows;
      else if (px >= nx - 0.3 * d && px <= nx + 0.3 * d && py >= ye + 0.25 * d && py < ny + 0.2 * d)
        r = Region::nose;
      else if (px >= std::min(mlx, mrx) - 0.25 * d && px <= std::max(mlx, mrx) + 0.25 * d && py >= ym - 0.25 * d &&
               py < ym + 0.35 * d)
        r = Region::mouth;
      mask[size_t(y * W + x)] = r;
    }
  return mask;
}

std::array<double, kRegions> region_fractions(const std::vector<double>& map, const std::vector<Region>& mask) {
  ADNN_CHECK(map.size() == mask.size(), "region_fractions: a map of ", map.size(), " values and a mask of ",
             mask.size());
  std::array<double, kRegions> f{};
  double total = 0;
  for (size_t i = 0; i < map.size(); ++i) {
    const double v = std::max(map[i], 0.0);
    f[size_t(int(mask[i]))] += v;
    total += v;
  }
  if (total > 0)
    for (double& v : f) v /= total;
  return f;
}

}  // namespace adnn::explain
