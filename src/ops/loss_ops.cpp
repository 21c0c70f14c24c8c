// Losses (include/adnn/nn/loss.hpp).
#include <adnn/nn/loss.hpp>

#include <adnn/amp/amp.hpp>
#include <adnn/cuda/runtime.hpp>

#include "ops/common.hpp"

namespace adnn::nn {

using namespace ops_detail;

Tensor one_hot(const Tensor& labels, int64_t K, DType dtype) {
  ADNN_CHECK(labels.dtype() == DType::i64 && labels.dim() == 1, "one_hot: labels must be i64 (B), got ",
             labels.desc());
  Tensor classes = arange(0, double(K), 1, TensorOptions(DType::i64, labels.device()));
  return eq(labels.unsqueeze(1), classes.unsqueeze(0)).to(dtype);
}

namespace {
void check_targets(const char* op, const Tensor& logits, const Tensor& targets, const Tensor& w) {
  check_defined(op, logits, "logits");
  check_defined(op, targets, "targets");
  ADNN_CHECK(logits.dim() == 2, op, ": logits must be (B, K), got ", logits.desc());
  ADNN_CHECK(targets.sizes() == logits.sizes(), op, ": targets ", targets.desc(), " must match logits ",
             logits.desc());
  if (w.defined())
    ADNN_CHECK(w.dim() == 1 && w.size(0) == logits.size(1), op, ": class weights ", w.desc(), " must be (",
               logits.size(1), ")");
}
Tensor weighted(const Tensor& t, const Tensor& w) { return w.defined() ? mul(t, w) : t; }
}  // namespace

Tensor soft_cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& w) {
  check_targets("soft_cross_entropy", logits, targets, w);
  Tensor a = weighted(targets, w);  // (B, K)
  return div(sum(mul(a, neg(log_softmax(logits, 1)))), sum(a));
}

Tensor focal_loss(const Tensor& logits, const Tensor& targets, double gamma, const Tensor& w) {
  check_targets("focal_loss", logits, targets, w);
  Tensor lp = log_softmax(logits, 1);
  Tensor mod = pow(add(neg(exp(lp)), 1.0), gamma);  // (1 - p)^γ
  Tensor a = weighted(targets, w);
  return div(sum(mul(mul(a, mod), neg(lp))), sum(a));
}

std::vector<double> dls_prior(const std::vector<int64_t>& counts) {
  ADNN_CHECK(!counts.empty(), "dls_prior: no class counts");
  std::vector<double> p(counts.size());
  double z = 0;
  for (size_t c = 0; c < counts.size(); ++c) {
    ADNN_CHECK(counts[c] > 0, "dls_prior: class ", c, " has no training samples");
    p[c] = 1.0 / double(counts[c]);
    z += p[c];
  }
  for (auto& v : p) v /= z;
  return p;
}

Tensor dls_targets(const Tensor& targets, const Tensor& prior, double eps) {
  ADNN_CHECK(prior.dim() == 1 && prior.size(0) == targets.size(-1), "dls_targets: prior ", prior.desc(),
             " must have one entry per class of ", targets.desc());
  ADNN_CHECK(eps >= 0 && eps <= 1, "dls_targets: eps ", eps, " outside [0, 1]");
  return add(mul(targets, 1.0 - eps), mul(prior, eps));
}

Tensor dls_loss(const Tensor& logits, const Tensor& targets, const Tensor& prior, double eps) {
  check_targets("dls_loss", logits, targets, {});
  return soft_cross_entropy(logits, dls_targets(targets, prior, eps));
}

Tensor center_loss(const Tensor& f, const Tensor& labels, const Tensor& centers) {
  ADNN_CHECK(f.dim() == 2 && centers.dim() == 2 && centers.size(1) == f.size(1), "center_loss: features ", f.desc(),
             " and centers ", centers.desc(), " must be (B, D) and (K, D)");
  Tensor d = sub(f, index_select(centers.detach(), 0, labels));
  return mul(sum(mul(d, d)), 0.5 / double(std::max<int64_t>(f.size(0), 1)));
}

void update_centers(Tensor& centers, const Tensor& f, const Tensor& labels, double alpha) {
  NoGradGuard ng;
  const int64_t K = centers.size(0);
  Tensor oh = one_hot(labels, K, centers.dtype());                   // (B, K)
  Tensor n = sum(oh, {0});                                          // (K)
  Tensor sum_f = matmul(oh.t(), f.detach().to(centers.dtype()));    // (K, D)
  Tensor delta = div(sub(mul(centers, n.unsqueeze(1)), sum_f), add(n, 1.0).unsqueeze(1));
  centers.copy_(sub(centers, mul(delta, alpha)));
}

namespace {
void check_compound(const Tensor& z, const Tensor& f, const Tensor& t, const Tensor& y, const Tensor& c,
                    const Tensor& prior, const Tensor& w) {
  check_targets("compound_loss", z, t, w);
  check_defined("compound_loss", f, "features");
  check_devices("compound_loss", {&z, &f, &t, &y, &c, &prior, &w});
  ADNN_CHECK(f.dim() == 2 && f.size(0) == z.size(0), "compound_loss: features ", f.desc(), " must be (",
             z.size(0), ", D)");
  ADNN_CHECK(y.dtype() == DType::i64 && y.dim() == 1 && y.size(0) == z.size(0), "compound_loss: labels ", y.desc(),
             " must be i64 (", z.size(0), ")");
  ADNN_CHECK(c.dim() == 2 && c.size(0) == z.size(1) && c.size(1) == f.size(1), "compound_loss: centers ", c.desc(),
             " must be (", z.size(1), ", ", f.size(1), ")");
  ADNN_CHECK(prior.dim() == 1 && prior.size(0) == z.size(1), "compound_loss: prior ", prior.desc(), " must be (",
             z.size(1), ")");
}
}  // namespace

CompoundLoss compound_loss(const Tensor& logits, const Tensor& features, const Tensor& targets, const Tensor& labels,
                           const Tensor& centers, const Tensor& prior, const Tensor& w, const CompoundLossOptions& o) {
  check_compound(logits, features, targets, labels, centers, prior, w);
  // computed in f64 for f64 logits, else in f32; the logits and features are read as they are
  // when in that dtype or (f32 math) in f16/bf16 — autocast's bf16 logits: no widened copy —
  // and the small inputs (targets, centers, prior, weights) are converted to it
  const DType ct = logits.dtype() == DType::f64 ? DType::f64 : DType::f32;
  auto cvt = [ct](const Tensor& t) { return t.defined() ? t.detach().to(ct).contiguous() : Tensor(); };
  auto keep = [&](const Tensor& t) {
    const bool native = t.dtype() == ct || (ct == DType::f32 && is_reduced(t.dtype()));
    return native ? t.detach().contiguous() : cvt(t);
  };
  Tensor z = keep(logits), f = keep(features), t = cvt(targets), c = cvt(centers), pr = cvt(prior), wc = cvt(w);
  Tensor y = labels.contiguous();
  // the gradients in the math dtype; backward scales them by the upstream gradient and rounds
  // once into the logits' and features' dtypes
  Tensor gz = empty(z.sizes(), TensorOptions(ct, z.device())), gf = empty(f.sizes(), TensorOptions(ct, f.device()));
  Tensor terms = zeros({3}, TensorOptions(DType::f64, z.device()));
  Tensor wsum;
  {
    NoGradGuard ng;
    wsum = sum(weighted(t, wc)).contiguous();  // scalar on the device
  }
  const CompoundParams P{z.size(0), z.size(1), f.size(1), o.lambda[0], o.lambda[1], o.lambda[2], o.dls_eps};
  // Labels are checked where they live: on the device the check is raised at the next point
  // the host waits (cuda::watch_flag), so the loss costs no synchronisation.
  if (z.device().is_cuda()) {
#if ADNN_WITH_CUDA_BACKEND
    auto message = [](int64_t label) {
      return detail::cat("compound_loss: label ", label, " out of range for the logits' classes");
    };
    Tensor& flag = watched_device_flag("compound_loss", message);  // raised at the next host wait
    backend::compound_loss(z, f, t, y, c, pr, wc, wsum, gz, gf, terms, flag, P);
#endif
  } else {
    Tensor bad = zeros({1}, DType::i64);
    backend::compound_loss(z, f, t, y, c, pr, wc, wsum, gz, gf, terms, bad, P);
    if (const int64_t label = bad.data_ptr<int64_t>()[0]; label != 0)
      ADNN_FAIL("compound_loss: label ", label, " out of range for ", z.size(1), " classes");
  }
  CompoundLoss out;
  out.terms = terms.to(ct);
  // the loss in the logits' dtype, or in f32 under autocast (torch's rule for losses)
  const DType total_t = amp::autocast_dtype() && is_reduced(logits.dtype()) ? ct : logits.dtype();
  {
    NoGradGuard ng;
    out.total = add(add(mul(out.terms.select(0, 0), o.lambda[0]), mul(out.terms.select(0, 1), o.lambda[1])),
                    mul(out.terms.select(0, 2), o.lambda[2]))
                    .to(total_t);
  }
  autograd::record("compound_loss", {logits, features}, out.total,
                   [gz, gf, ct, zt = logits.dtype(), ft = features.dtype()](const Tensor& g, const std::vector<bool>& need) {
                     Tensor gs = g.to(ct);
                     return std::vector<Tensor>{need[0] ? mul(gz, gs).to(zt) : Tensor(),
                                                need[1] ? mul(gf, gs).to(ft) : Tensor()};
                   });
  return out;
}

CompoundLoss compound_loss_unfused(const Tensor& logits, const Tensor& features, const Tensor& targets,
                                   const Tensor& labels, const Tensor& centers, const Tensor& prior, const Tensor& w,
                                   const CompoundLossOptions& o) {
  check_compound(logits, features, targets, labels, centers, prior, w);
  Tensor ce = soft_cross_entropy(logits, targets, w);
  Tensor cl = center_loss(features, labels, centers);
  Tensor dl = dls_loss(logits, targets, prior, o.dls_eps);
  CompoundLoss out;
  out.total = add(add(mul(ce, o.lambda[0]), mul(cl, o.lambda[1])), mul(dl, o.lambda[2]));
  out.terms = stack({ce.detach(), cl.detach(), dl.detach()}, 0);
  return out;
}

}  // namespace adnn::nn
