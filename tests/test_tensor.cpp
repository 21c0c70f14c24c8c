// Tensor: dtypes and conversions, views sharing storage, contiguity, factories, printing.
#include <cstring>
#include <sstream>

#include <adnn/config.hpp>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;

TEST_SUITE("tensor") {
  // The host cache (src/core/tensor.cpp): blocks of 1 MiB or more are reused by size, kept up
  // to the limit (oldest unmapped first), never in ASan builds.
  TEST_CASE("host cache: a freed large block is reused for the same size, small ones are not cached, the limit holds") {
    const HostCacheStats before = host_cache_stats();
#if defined(__SANITIZE_ADDRESS__)
    CHECK(before.limit == 0);
#else
    host_empty_cache();
    set_host_cache_limit(size_t(64) << 20);
    const int64_t n = (3 << 20) / 4;  // 3 MiB of f32
    const void* first = nullptr;
    {
      Tensor a = empty({n});
      first = a.data_ptr();
    }
    CHECK(host_cache_stats().cached_blocks == 1);
    CHECK(host_cache_stats().cached_bytes == size_t(3) << 20);
    const uint64_t hits = host_cache_stats().hits;
    {
      Tensor b = empty({n});
      CHECK(b.data_ptr() == first);  // the cached block, not a new mapping
      CHECK(host_cache_stats().hits == hits + 1);
      CHECK(host_cache_stats().cached_blocks == 0);
      Tensor c = full({n - 100}, 2.0);  // rounds up to the same 64 KiB multiple: a miss, b holds the block
      CHECK(amax(c).item<double>() == 2.0);
    }
    {
      Tensor small = empty({1000});  // 4 KB: glibc's, never cached
    }
    CHECK(host_cache_stats().cached_blocks == 2);
    // the limit: 3 blocks of 3 MiB under a 7 MiB limit keep the 2 most recently freed
    host_empty_cache();
    set_host_cache_limit(size_t(7) << 20);
    std::vector<const void*> ptrs;
    {
      std::vector<Tensor> ts;
      for (int i = 0; i < 3; ++i) {
        ts.push_back(empty({n}));
        ptrs.push_back(ts.back().data_ptr());
      }
    }  // freed in order 0, 1, 2: block 0 is evicted when block 2 arrives
    CHECK(host_cache_stats().cached_blocks == 2);
    CHECK(host_cache_stats().cached_bytes <= size_t(7) << 20);
    Tensor x = empty({n}), y = empty({n});
    CHECK(x.data_ptr() == ptrs[2]);  // most recently freed first
    CHECK(y.data_ptr() == ptrs[1]);
    set_host_cache_limit(before.limit);
    host_empty_cache();
#endif
  }

  TEST_CASE("f16 and bf16 conversions are exact IEEE round-to-nearest-even") {
    CHECK(float_to_half_bits(1.0f) == 0x3c00);
    CHECK(float_to_half_bits(-2.0f) == 0xc000);
    CHECK(float_to_half_bits(65504.0f) == 0x7bff);
    CHECK(float_to_half_bits(65520.0f) == 0x7c00);          // rounds to inf
    CHECK(float_to_half_bits(5.960464477539063e-08f) == 0x0001);  // smallest subnormal
    CHECK(float_to_half_bits(1.0f + 1.0f / 2048) == 0x3c00);     // tie -> even
    CHECK(float_to_half_bits(1.0f + 3.0f / 2048) == 0x3c02);     // tie -> even (up)
    CHECK(half_bits_to_float(0x3555) == doctest::Approx(0.333251953125));
    CHECK(half_bits_to_float(0x0001) == 5.960464477539063e-08f);
    CHECK(std::isnan(half_bits_to_float(float_to_half_bits(NAN))));
    // every finite half round-trips through float
    for (uint32_t b = 0; b < 0x10000; ++b) {
      if (((b >> 10) & 0x1f) == 0x1f) continue;
      REQUIRE(float_to_half_bits(half_bits_to_float(uint16_t(b))) == b);
    }
    CHECK(float_to_bf16_bits(1.0f) == 0x3f80);
    CHECK(bf16_bits_to_float(0x3f80) == 1.0f);
    CHECK(float_to_bf16_bits(1.0f + 1.0f / 256) == 0x3f80);  // tie -> even
    CHECK(float_to_bf16_bits(1.0f + 3.0f / 256) == 0x3f82);
  }

  TEST_CASE("to(dtype) converts between every pair") {
    Tensor a = tensor({0, 1, 2.5, -3}, {4});
    check_values(a.to(DType::f16), {0, 1, 2.5, -3});
    check_values(a.to(DType::bf16), {0, 1, 2.5, -3});
    check_values(a.to(DType::i32), {0, 1, 2, -3});
    check_values(a.to(DType::i64).to(DType::f64), {0, 1, 2, -3});
    check_values(a.to(DType::boolean), {0, 1, 1, 1});
    check_values(tensor({200}, {1}).to(DType::u8), {200});
    for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean}) {
      Tensor x = ones({3}, t);
      CHECK(x.dtype() == t);
      CHECK(x.element_size() == dtype_size(t));
      check_values(x.to(DType::f32), {1, 1, 1});
      CHECK(dtype_from_name(dtype_name(t)) == t);
    }
  }

  TEST_CASE("views share storage and have the right strides") {
    Tensor a = arange(0, 24, 1, DType::f32).reshape({2, 3, 4});
    CHECK(a.is_contiguous());
    CHECK(a.strides() == Shape{12, 4, 1});
    Tensor p = a.permute({2, 0, 1});
    CHECK(p.sizes() == Shape{4, 2, 3});
    CHECK(p.strides() == Shape{1, 12, 4});
    CHECK(!p.is_contiguous());
    CHECK(p.data_ptr() == a.data_ptr());
    Tensor s = a.slice(2, 1, 4, 2);  // columns 1, 3
    CHECK(s.sizes() == Shape{2, 3, 2});
    CHECK(s.strides() == Shape{12, 4, 2});
    CHECK(s.storage_offset() == 1);
    check_values(s.select(0, 0).select(0, 0), {1, 3});
    Tensor n = a.narrow(1, 1, 2);
    CHECK(n.storage_offset() == 4);
    check_values(n.select(0, 1).select(0, 1), {20, 21, 22, 23});
    Tensor e = tensor({1, 2, 3}, {3, 1}).expand({2, 3, 4});
    CHECK(e.strides() == Shape{0, 1, 0});
    check_values(e.select(0, 1).select(0, 2), {3, 3, 3, 3});
    Tensor t = a.transpose(0, 2);
    CHECK(t.sizes() == Shape{4, 3, 2});
    CHECK(a.unsqueeze(1).sizes() == Shape{2, 1, 3, 4});
    CHECK(a.unsqueeze(-1).sizes() == Shape{2, 3, 4, 1});
    CHECK(a.unsqueeze(1).squeeze(1).sizes() == Shape{2, 3, 4});
    CHECK(ones({1, 3, 1}).squeeze().sizes() == Shape{3});
    CHECK(a.flatten().sizes() == Shape{24});
    CHECK(a.view({6, -1}).sizes() == Shape{6, 4});
    // writes through a view are visible in the base
    {
      NoGradGuard ng;
      a.select(1, 2).fill_(-1);
    }
    check_values(a.select(0, 1).select(0, 2), {-1, -1, -1, -1});
  }

  TEST_CASE("reshape copies only when a view is impossible; contiguous() materialises") {
    Tensor a = arange(0, 6, 1, DType::f32).reshape({2, 3});
    Tensor t = a.t();
    Tensor r = t.reshape({6});
    CHECK(r.data_ptr() != a.data_ptr());
    check_values(r, {0, 3, 1, 4, 2, 5});
    CHECK(a.reshape({3, 2}).data_ptr() == a.data_ptr());
    Tensor c = t.contiguous();
    CHECK(c.is_contiguous());
    check_values(c, {0, 3, 1, 4, 2, 5});
    CHECK(a.contiguous().is_same(a));
    // a view of a permuted tensor that keeps its dims grouped stays a view
    Tensor b = arange(0, 24, 1, DType::f32).reshape({2, 3, 4}).permute({1, 0, 2});
    CHECK(b.reshape({3, 2, 2, 2}).data_ptr() == b.data_ptr());
  }

  TEST_CASE("factories") {
    check_values(zeros({2, 2}), {0, 0, 0, 0});
    check_values(full({3}, 2.5), {2.5, 2.5, 2.5});
    check_values(arange(0, 1, 0.25), {0, 0.25, 0.5, 0.75});
    check_values(linspace(0, 1, 5), {0, 0.25, 0.5, 0.75, 1});
    CHECK(scalar_tensor(3).dim() == 0);
    CHECK(scalar_tensor(3).item<double>() == 3);
    manual_seed(5);
    auto r1 = rand({100}).to_vector();
    manual_seed(5);
    auto r2 = rand({100}).to_vector();
    CHECK(r1 == r2);
    for (double v : r1) CHECK((v >= 0 && v < 1));
    auto n = randn({20000}, DType::f64);
    CHECK(mean(n).item<double>() == doctest::Approx(0).epsilon(0.03).scale(1));
    CHECK(var(n).item<double>() == doctest::Approx(1).epsilon(0.05));
    auto ri = randint(3, 7, {1000}).to_vector();
    for (double v : ri) CHECK((v >= 3 && v < 7));
    auto perm = randperm(10);
    std::sort(perm.begin(), perm.end());
    for (int i = 0; i < 10; ++i) CHECK(perm[i] == i);
    Tensor es = empty_strided({2, 3}, {1, 2});
    CHECK(es.strides() == Shape{1, 2});
    CHECK(!es.is_contiguous());
  }

  TEST_CASE("CPU storage is 64-byte aligned") {
    for (int64_t n : {1, 3, 17, 1000}) {
      Tensor t = empty({n}, DType::u8);
      CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64 == 0);
    }
  }

  TEST_CASE("printing") {
    std::string s = to_string(tensor({1, 2.5, -3, 4}, {2, 2}));
    CHECK(s == "tensor([[1.0000, 2.5000],\n        [-3.0000, 4.0000]], shape=[2, 2], dtype=f32)");
    CHECK(to_string(from_vector(std::vector<int64_t>{1, 2}, {2})) == "tensor([1, 2], shape=[2], dtype=i64)");
    std::string big = to_string(arange(0, 100));
    CHECK(big.find("...") != std::string::npos);
    CHECK(to_string(Tensor()) == "tensor(undefined)");
    std::ostringstream os;
    os << ones({1}).requires_grad_();
    CHECK(os.str().find("requires_grad=true") != std::string::npos);
  }

  TEST_CASE("an emulated cuda device says so, and its label reads back") {
#if ADNN_WITH_CUDA_EMULATION
    CHECK(cuda_is_emulated());
    CHECK(Device("cuda").str() == "cuda:0 (emulated)");
    CHECK(kCUDA.str() == "cuda:0 (emulated)");
    std::ostringstream os;
    os << Device("cuda:0");
    CHECK(os.str() == "cuda:0 (emulated)");
    CHECK(zeros({2}, kCUDA).desc() == "f32[2] cuda:0 (emulated)");
#else
    CHECK(!cuda_is_emulated());
    CHECK(Device("cuda").str() == "cuda:0");
#endif
    CHECK(Device(Device("cuda").str()) == kCUDA);
    CHECK(Device("cpu").str() == "cpu");
    CHECK_THROWS_AS(Device("cpu (emulated)"), Error);
  }

  TEST_CASE("devices") {
    CHECK(Device("cpu").is_cpu());
    CHECK(Device("cuda:1").index == 1);
    CHECK(Device("cuda").str() == (cuda_is_emulated() ? "cuda:0 (emulated)" : "cuda:0"));
    CHECK_THROWS_AS(Device("gpu"), Error);
    CHECK(cuda_device_count() >= 0);
    CHECK(cuda_is_available() == (ADNN_WITH_CUDA_BACKEND && cuda_device_count() > 0));
  }
}
