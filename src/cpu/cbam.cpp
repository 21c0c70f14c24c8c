// CPU twin of kernels/cbam.cuh: CBAM's channel and spatial pools (mean and max in one pass,
// first-index argmax) and the sigmoid gate, forward and backward; OpenMP over rows. f16/bf16
// storage natively (math in acc_t<T>; the gate's logits in f32).
#include <omp.h>

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/activation.hpp"
#include "common/reduce.hpp"
#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

namespace {
// Runs f(x, out, argmax, A{}) with the typed pointers of a pooling call (T float, double or
// f16/bf16 natively, A its accumulation type).
template <class F>
void with_pool_pointers(const Tensor& x, const Tensor& out, const Tensor& argmax, const char* op, F&& f) {
  storage_dispatch(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    f(x.data_ptr<T>(), out.data_ptr<T>(), argmax.data_ptr<int64_t>(), acc_t<T>{});
  });
}
}  // namespace

void channel_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t N, int64_t P, int64_t C) {
  with_pool_pointers(x, out, argmax, "channel_pool2d", [&](const auto* xp, auto* op, int64_t* am, auto acc) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(xp)>>;
    using A = decltype(acc);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      std::vector<A> s(size_t(C), A(0)), best(size_t(C), -std::numeric_limits<A>::infinity());
      std::vector<int64_t> bi(size_t(C), -1);
      for (int64_t p = 0; p < P; ++p) {
        const T* row = xp + (n * P + p) * C;
        for (int64_t c = 0; c < C; ++c) {
          s[c] += A(row[c]);
          common::argmax_merge(best[c], bi[c], A(row[c]), p);
        }
      }
      for (int64_t c = 0; c < C; ++c) {
        op[n * 2 * C + c] = T(s[c] / A(P));
        op[n * 2 * C + C + c] = T(best[c]);
        am[n * C + c] = bi[c];
      }
    }
  });
}

void channel_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t N, int64_t P, int64_t C) {
  storage_dispatch(g.dtype(), "channel_pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* gp = g.data_ptr<T>();
    const int64_t* am = argmax.data_ptr<int64_t>();
    T* out = gx.data_ptr<T>();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < C; ++c) {
          // as the kernel: mean + (max or +0), so that a −0 mean gives +0 on both
          const A mean = A(gp[n * 2 * C + c]) / A(P);
          out[(n * P + p) * C + c] = T(mean + (am[n * C + c] == p ? A(gp[n * 2 * C + C + c]) : A(0)));
        }
  });
}

void spatial_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t M, int64_t C) {
  with_pool_pointers(x, out, argmax, "spatial_pool2d", [&](const auto* xp, auto* op, int64_t* am, auto acc) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(xp)>>;
    using A = decltype(acc);
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; ++m) {
      A s = 0, best = -std::numeric_limits<A>::infinity();
      int64_t bi = -1;
      for (int64_t c = 0; c < C; ++c) {
        const A v = A(xp[m * C + c]);
        s += v;
        common::argmax_merge(best, bi, v, c);
      }
      op[m * 2] = T(s / A(C));
      op[m * 2 + 1] = T(best);
      am[m] = bi;
    }
  });
}

void spatial_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t M, int64_t C) {
  storage_dispatch(g.dtype(), "spatial_pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* gp = g.data_ptr<T>();
    const int64_t* am = argmax.data_ptr<int64_t>();
    T* out = gx.data_ptr<T>();
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = 0; c < C; ++c) {
        A val = A(gp[m * 2]) / A(C);
        if (am[m] == c) val += A(gp[m * 2 + 1]);
        out[m * C + c] = T(val);
      }
  });
}

// σ(a) per gate value (N·C for a channel gate, N·P for a spatial one): one exp per gate, not
// one per element of x.
template <class A, class T>
static std::vector<A> gate_sigmoids(const T* ap, int64_t n) {
  std::vector<A> s(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) s[size_t(i)] = common::sigmoid(A(ap[i]));
  return s;
}

void sigmoid_gate(const Tensor& x, const Tensor& a, const Tensor& y, int64_t N, int64_t P, int64_t C, bool channel) {
  // x, y in T (f16/bf16 natively); the logits a in acc_t<T>
  storage_dispatch(x.dtype(), "sigmoid_gate", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* xp = x.data_ptr<T>();
    T* yp = y.data_ptr<T>();
    const std::vector<A> sv = gate_sigmoids<A>(a.data_ptr<A>(), channel ? N * C : N * P);
    const A* sg = sv.data();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t p = 0; p < P; ++p) {
        const T* xr = xp + (n * P + p) * C;
        T* yr = yp + (n * P + p) * C;
        if (channel) {
          const A* sr = sg + n * C;
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) yr[c] = A(xr[c]) * sr[c];
        } else {
          const A s = sg[n * P + p];
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) yr[c] = A(xr[c]) * s;
        }
      }
  });
}

void sigmoid_gate_backward(const Tensor& g, const Tensor& x, const Tensor& a, const Tensor& gx, const Tensor& ga,
                           int64_t N, int64_t P, int64_t C, bool channel) {
  // g, x, gx in T (f16/bf16 natively); the logits a and their gradient ga in acc_t<T>
  storage_dispatch(x.dtype(), "sigmoid_gate backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* gp = g.data_ptr<T>();
    const T* xp = x.data_ptr<T>();
    T* gxp = gx.defined() ? gx.data_ptr<T>() : nullptr;
    A* gap = ga.defined() ? ga.data_ptr<A>() : nullptr;
    const int64_t R = channel ? C : P;  // gate values per sample
    const std::vector<A> sv = gate_sigmoids<A>(a.data_ptr<A>(), N * R);
    const A* sg = sv.data();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      std::vector<A> accv(static_cast<size_t>(R), A(0));  // Σ g·x per gate value
      A* acc = accv.data();
      for (int64_t p = 0; p < P; ++p) {
        const int64_t e0 = (n * P + p) * C;
        const T* gr = gp + e0;
        const T* xr = xp + e0;
        if (channel) {
          const A* sr = sg + n * C;
          if (gxp) {
            T* gxr = gxp + e0;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) gxr[c] = A(gr[c]) * sr[c];
          }
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) acc[c] += A(gr[c]) * A(xr[c]);
        } else {
          const A s = sg[n * P + p];
          if (gxp) {
            T* gxr = gxp + e0;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) gxr[c] = A(gr[c]) * s;
          }
          A d = 0;
#pragma omp simd reduction(+ : d)
          for (int64_t c = 0; c < C; ++c) d += A(gr[c]) * A(xr[c]);
          acc[p] = d;
        }
      }
      if (gap)
        for (int64_t r = 0; r < R; ++r) {
          const A s = sg[n * R + r];
          gap[n * R + r] = acc[r] * s * (A(1) - s);
        }
    }
  });
}

}  // namespace adnn::cpu
