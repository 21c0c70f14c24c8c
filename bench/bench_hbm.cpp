// The two ceilings the GPU kit (scripts/gpu-check.sh) measures kernels against:
//   copy: a device-to-device copy of a large buffer (cudaMemcpyAsync through adnn's runtime),
//         GB/s counting bytes read + bytes written, median of --iters timed copies after a
//         warm-up; the buffer is filled with a non-zero pattern first;
//   gemm: an f32 (N x N) · (N x N) matmul through adnn's matmul (cuBLAS on a GPU), TFLOP/s
//         (2 N^3 per product), median of --iters, on random data; validated first: 16 entries
//         (the corners and random ones) against a dot product in double on the host, within
//         f32 accumulation's error (gemm_checked; exit 1 if not).
// Each copy is about a millisecond and each product tens of milliseconds at the defaults, so
// one event pair per iteration costs nothing measurable; the median drops outliers.
// Prints one JSON object on stdout. Runs on the emulated device too (the kit's --dry-run:
// give small sizes); those numbers mean nothing and are labelled "emulated".
//   bf16 (--bf16-gemms MxNxK,...): bf16 (M x K) · (K x N) matmuls through adnn's matmul
//         (cuBLASLt, f32 accumulation, bf16 out), TFLOP/s, median of --iters event pairs of
//         enough calls to last ~1 ms; each validated first like the f32 product (16 entries
//         against double on the bf16 inputs, within the bf16 output's rounding). The GPU kit
//         asks for 8192³ (the bf16 ceiling) and ADNN-FER paper encoder's GEMMs at batch 32
//         (32 · 49 = 1568 token rows, d_model 2048, d_ff 4096; issue #15's goal).
//   bench_hbm [--bytes B] [--iters N] [--gemm N] [--bf16-gemms LIST]   (defaults: 2 GiB, 20, 8192, none)
#include <adnn/adnn.hpp>
#include <adnn/cuda/runtime.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace adnn;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// z = x · y checked at 16 entries (the corners and 14 drawn from `seed`) against a dot product
// in double of x's row and y's column as stored (f32 or bf16 values, exact in double):
// |z − want| ≤ rel·|want| + mag_rel·Σ|x·y| + 1e-6. Prints each miss to stderr, naming `what`.
bool check_entries(const Tensor& x, const Tensor& y, const Tensor& z, uint64_t seed, double rel, double mag_rel,
                   const char* what) {
  const int64_t M = x.size(0), K = x.size(1), N = y.size(1);
  bool ok = true;
  uint64_t st = seed;
  auto draw = [&](int64_t n) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    return int64_t((st >> 33) % uint64_t(n));
  };
  for (int t = 0; t < 16; ++t) {
    const int64_t i = t == 0 ? 0 : t == 1 ? M - 1 : draw(M), j = t == 0 ? 0 : t == 1 ? N - 1 : draw(N);
    const std::vector<double> row = x.narrow(0, i, 1).to(kCPU).to(DType::f64).to_vector(),
                              col = y.narrow(1, j, 1).contiguous().to(kCPU).to(DType::f64).to_vector();
    double want = 0, mag = 0;
    for (int64_t k = 0; k < K; ++k) {
      want += row[size_t(k)] * col[size_t(k)];
      mag += std::fabs(row[size_t(k)] * col[size_t(k)]);
    }
    const double got = z.narrow(0, i, 1).narrow(1, j, 1).to(kCPU).to(DType::f64).to_vector()[0];
    if (!(std::fabs(got - want) <= rel * std::fabs(want) + mag_rel * mag + 1e-6)) {
      ok = false;
      std::fprintf(stderr, "bench_hbm: %s %lldx%lldx%lld z[%lld, %lld] = %.9g, want %.9g\n", what, (long long)M,
                   (long long)N, (long long)K, (long long)i, (long long)j, got, want);
    }
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  size_t bytes = size_t(2) << 30;
  int iters = 20;
  int64_t gemm_n = 8192;
  std::vector<std::array<int64_t, 3>> bf16_shapes;  // (M, N, K)
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--bytes") bytes = std::strtoull(v, nullptr, 10);
    else if (k == "--iters") iters = std::max(1, std::atoi(v));
    else if (k == "--gemm") gemm_n = std::strtoll(v, nullptr, 10);
    else if (k == "--bf16-gemms") {
      for (const char* q = v; *q;) {
        long long m = 0, n = 0, kk = 0;
        int used = 0;
        if (std::sscanf(q, "%lldx%lldx%lld%n", &m, &n, &kk, &used) != 3 || m <= 0 || n <= 0 || kk <= 0) {
          std::fprintf(stderr, "bench_hbm: --bf16-gemms takes MxNxK[,MxNxK...] with positive sizes; got '%s'\n", v);
          return 2;
        }
        bf16_shapes.push_back({m, n, kk});
        q += used;
        if (*q == ',') ++q;
      }
    } else {
      std::fprintf(stderr, "usage: bench_hbm [--bytes B] [--iters N] [--gemm N] [--bf16-gemms MxNxK,...]\n");
      return 2;
    }
  }
  if (cuda_device_count() == 0) {
    std::printf("{\"error\": \"no CUDA device\"}\n");
    return 1;
  }
  try {
    const bool emulated = cuda::is_emulated();
    // copy
    void* src = cuda::allocate(bytes);
    void* dst = cuda::allocate(bytes);
    cuda::memset(src, 0x5a, bytes);
    cuda::memset(dst, 0x00, bytes);
    cuda::copy_device_to_device(dst, src, bytes);  // warm-up
    cuda::device_synchronize();
    cuda::Event a = cuda::create_event(), b = cuda::create_event();
    std::vector<double> ms;
    for (int i = 0; i < iters; ++i) {
      cuda::record(a);
      cuda::copy_device_to_device(dst, src, bytes);
      cuda::record(b);
      ms.push_back(double(cuda::elapsed_ms(a, b)));
    }
    const double copy_ms = median(ms);
    unsigned char probe[16];
    cuda::copy_to_host(probe, static_cast<char*>(dst) + bytes / 2, sizeof probe);
    const bool copied = std::all_of(probe, probe + sizeof probe, [](unsigned char c) { return c == 0x5a; });
    cuda::deallocate(src, bytes);
    cuda::deallocate(dst, bytes);
    // gemm
    double gemm_ms = 0;
    bool gemm_checked = true;
    if (gemm_n > 0) {
      NoGradGuard ng;
      manual_seed(1);
      Tensor x = randn({gemm_n, gemm_n}, TensorOptions(DType::f32, kCUDA));
      Tensor y = randn({gemm_n, gemm_n}, TensorOptions(DType::f32, kCUDA));
      Tensor z = matmul(x, y);  // warm-up (handle creation, workspace)
      cuda::device_synchronize();
      // validate before timing: 16 entries against double, within f32 accumulation's error
      gemm_checked = check_entries(x, y, z, 99, 0, 1e-5, "f32 gemm");
      std::vector<double> gms;
      for (int i = 0; i < std::max(3, iters / 2); ++i) {
        cuda::record(a);
        z = matmul(x, y);
        cuda::record(b);
        gms.push_back(double(cuda::elapsed_ms(a, b)));
      }
      gemm_ms = median(gms);
    }
    // bf16 products
    std::string bf16_json = "[";
    bool bf16_checked = true;
    for (size_t g = 0; g < bf16_shapes.size(); ++g) {
      NoGradGuard ng;
      manual_seed(2 + int64_t(g));
      const int64_t M = bf16_shapes[g][0], N = bf16_shapes[g][1], K = bf16_shapes[g][2];
      const TensorOptions bf(DType::bf16, kCUDA);
      Tensor x = randn({M, K}, bf), y = randn({K, N}, bf);
      Tensor z = matmul(x, y);  // warm-up: the plan and its heuristic
      cuda::device_synchronize();
      // the bf16 output's rounding (2^-9 relative) and f32 accumulation
      const bool ok = check_entries(x, y, z, 7 + g, 4e-3, 1e-5, "bf16 gemm");
      bf16_checked = bf16_checked && ok;
      cuda::record(a);
      z = matmul(x, y);
      cuda::record(b);
      const double once = std::max(double(cuda::elapsed_ms(a, b)), 1e-3);
      const int reps = int(std::clamp(std::ceil(1.0 / once), 1.0, 200.0));
      std::vector<double> bms;
      for (int i = 0; i < std::max(5, iters); ++i) {
        cuda::record(a);
        for (int r = 0; r < reps; ++r) z = matmul(x, y);
        cuda::record(b);
        bms.push_back(double(cuda::elapsed_ms(a, b)) / reps);
      }
      const double ms = median(bms);
      char item[256];
      std::snprintf(item, sizeof item,
                    "%s{\"m\": %lld, \"n\": %lld, \"k\": %lld, \"calls_per_event_pair\": %d, \"ms\": %.6f, "
                    "\"TFLOPs\": %.3f, \"checked\": %s}",
                    g ? ", " : "", (long long)M, (long long)N, (long long)K, reps, ms,
                    2.0 * double(M) * double(N) * double(K) / (ms * 1e-3) / 1e12, ok ? "true" : "false");
      bf16_json += item;
    }
    bf16_json += "]";
    cuda::destroy_event(a);
    cuda::destroy_event(b);
    std::printf(
        "{\"device\": \"%s\", \"emulated\": %s, \"copy_bytes\": %zu, \"copy_iters\": %d, \"copy_ms\": %.6f, "
        "\"copy_GBps\": %.3f, \"copy_checked\": %s, \"gemm_n\": %lld, \"gemm_ms\": %.6f, \"gemm_f32_TFLOPs\": %.4f, "
        "\"gemm_checked\": %s, \"bf16_gemms\": %s}\n",
        cuda::device_name(), emulated ? "true" : "false", bytes, iters, copy_ms,
        copy_ms > 0 ? 2.0 * double(bytes) / (copy_ms * 1e-3) / 1e9 : 0.0, copied ? "true" : "false",
        (long long)gemm_n, gemm_ms,
        gemm_ms > 0 ? 2.0 * double(gemm_n) * double(gemm_n) * double(gemm_n) / (gemm_ms * 1e-3) / 1e12 : 0.0,
        gemm_checked ? "true" : "false", bf16_json.c_str());
    return copied && gemm_checked && bf16_checked ? 0 : 1;
  } catch (const Error& e) {
    std::printf("{\"error\": \"%s\"}\n", e.what());
    return 1;
  }
}
