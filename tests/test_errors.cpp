// Bad input raises adnn::Error naming the op and the shapes / dtypes / devices involved.
#include "testing.hpp"

using namespace adnn;

#define CHECK_ERROR(expr, text) CHECK_THROWS_WITH_AS(expr, doctest::Contains(text), Error)

TEST_SUITE("errors") {
  TEST_CASE("shape mismatch") {
    CHECK_ERROR(add(ones({2, 3}), ones({4})), "add: shapes [2, 3] and [4] cannot be broadcast together");
    CHECK_ERROR(matmul(ones({2, 3}), ones({4, 5})), "matmul: inner dimensions differ: f32[2, 3] cpu x f32[4, 5] cpu");
    CHECK_ERROR(ones({2, 3}).view({4, 2}), "view: cannot reshape f32[2, 3] cpu (6 elements) to [4, 2]");
    CHECK_ERROR(ones({2, 3}).t().view({6}), "cannot be viewed as [6]; use reshape");
    CHECK_ERROR(linear(ones({2, 3}), ones({4, 5})), "linear: input f32[2, 3] cpu does not match weight f32[4, 5] cpu");
    CHECK_ERROR(conv2d(ones({1, 5, 5, 3}), ones({4, 3, 3, 2})), "conv2d: weight f32[4, 3, 3, 2] cpu expects 2 input channels but input f32[1, 5, 5, 3] cpu has 3");
    CHECK_ERROR(conv2d(ones({1, 2, 2, 1}), ones({1, 3, 3, 1})), "conv2d: kernel 3x3 (dilation 1) is larger than the padded input f32[1, 2, 2, 1] cpu");
    CHECK_ERROR(cat({ones({2, 3}), ones({3, 3})}, 1), "cat: tensor 1 is f32[3, 3] cpu but tensor 0 is f32[2, 3] cpu");
    CHECK_ERROR(layer_norm(ones({2, 3}), {4}), "layer_norm: normalized_shape [4] does not match the trailing dims of input f32[2, 3] cpu");
    CHECK_ERROR(ones({2, 3}).expand({2, 4}), "expand: cannot expand f32[2, 3] cpu to [2, 4]");
    CHECK_ERROR(ones({2}).permute({0, 0}), "permute: 2 dims given for f32[2] cpu");
    CHECK_ERROR(sum(ones({2, 3}), {2}), "sum: dim 2 out of range for a tensor of rank 2");
    CHECK_ERROR(max_pool2d(ones({2, 3}), {}), "max_pool2d: input must be (N, H, W, C), got f32[2, 3] cpu");
    CHECK_ERROR(batch_norm(ones({1, 3}), {}, {}, {}, {}, true), "batch_norm: training needs more than one value per channel");
    CHECK_ERROR(ones({2}).item<double>(), "item: tensor has 2 elements");
  }

  TEST_CASE("wrong dtype") {
    CHECK_ERROR(add(ones({2}), ones({2}, DType::i64)), "add: expected one dtype, got f32[2] cpu, i64[2] cpu");
    // floating dtypes promote as in torch (f32 + f64 -> f64, bf16 + f32 -> f32)
    CHECK(add(ones({2}), ones({2}, DType::f64)).dtype() == DType::f64);
    CHECK(add(ones({2}, DType::bf16), ones({2})).dtype() == DType::f32);
    CHECK_ERROR(exp(ones({2}, DType::i64)), "exp: expected a floating tensor, got i64[2] cpu");
    CHECK_ERROR(where(ones({2}), ones({2}), ones({2})), "where: condition must be bool, got f32[2] cpu");
    CHECK_ERROR(index_select(ones({3}), 0, ones({1})), "index_select: index must be i64, got f32[1] cpu");
    CHECK_ERROR(ones({2}, DType::i32).requires_grad_(), "requires_grad_: only floating tensors can require grad");
    CHECK_ERROR(ones({2}).data_ptr<double>(), "data_ptr<f64>: tensor is f32[2] cpu");
  }

  TEST_CASE("mixing devices, and asking for a GPU that is not there") {
    Tensor on_gpu = detail::placeholder_on(kCUDA, {2}, DType::f32);
    CHECK_ERROR(add(ones({2}), on_gpu), "add: expected all tensors on one device, got f32[2] cpu, f32[2] cuda:0");
    CHECK_ERROR(matmul(ones({2, 2}), detail::placeholder_on(kCUDA, {2, 2}, DType::f32)), "matmul: expected all tensors on one device");
    if (cuda_device_count() == 0) {
      CHECK_ERROR(ones({2}, kCUDA), "no CUDA device: a tensor on cuda:0 was requested");
      CHECK_ERROR(ones({2}).to(kCUDA), "no CUDA device");
    }
  }

  TEST_CASE("out-of-range index") {
    Tensor idx = from_vector(std::vector<int64_t>{0, 5}, {2});
    CHECK_ERROR(index_select(ones({3, 2}), 0, idx), "index_select: index 5 is out of range for dim 0 of f32[3, 2] cpu (size 3)");
    CHECK_ERROR(embedding(ones({4, 2}), from_vector(std::vector<int64_t>{-1}, {1})), "index -1 is out of range");
    CHECK_ERROR(gather(ones({2, 2}), 1, from_vector(std::vector<int64_t>{0, 2, 1, 1}, {2, 2})), "gather: index 2 is out of range for dim 1");
    CHECK_ERROR(cross_entropy(ones({2, 3}), from_vector(std::vector<int64_t>{0, 3}, {2})), "index 3 is out of range");
    CHECK_ERROR(ones({3}).select(0, 3), "select: index 3 out of range for dim 0 of f32[3] cpu");
    CHECK_ERROR(ones({3}).narrow(0, 2, 2), "narrow: [2, 4) out of range for dim 0 of f32[3] cpu");
  }

  TEST_CASE("backward twice through a freed graph") {
    Tensor x = ones({2}).requires_grad_();
    Tensor y = sum(mul(x, x));
    y.backward();
    CHECK_ERROR(y.backward(), "backward: trying to backward through the graph a second time (node 'sum'");
  }

  TEST_CASE("errors carry the source location") {
    try {
      add(ones({2}), ones({3}));
      FAIL("no error");
    } catch (const Error& e) {
      std::string w = e.what();
      CHECK(w.find("add: shapes [2] and [3]") == 0);
      CHECK(w.find(".hpp:") != std::string::npos);  // [common.hpp:NN]
    }
  }
}
