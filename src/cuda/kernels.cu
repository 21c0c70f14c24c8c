// The real kernels, compiled by nvcc for every architecture in ADNN_CUDA_ARCHS. The same
// headers build under the SIMT emulator for CI; this file instantiates their launchers
// for the dtypes the ops use.
#include <cstdio>
#include <stdexcept>
#include <string>

#include "kernels/elementwise.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/reduce.cuh"
#include "kernels/softmax.cuh"

namespace adnn::kernels {

void cuda_launch_failed(cudaError_t e, const char* kernel, const char* file, int line) {
  std::fprintf(stderr, "adnn: launch of %s failed at %s:%d: %s\n", kernel, file, line, cudaGetErrorString(e));
  throw std::runtime_error(std::string("kernel launch failed: ") + kernel + ": " + cudaGetErrorString(e));
}

#define ADNN_UNARY_INST(T)                                                                         \
  template void launch_unary_map<T, UnaryCode::neg>(const T*, T*, int64_t, Stream);                \
  template void launch_unary_map<T, UnaryCode::exp>(const T*, T*, int64_t, Stream);                \
  template void launch_unary_map<T, UnaryCode::log>(const T*, T*, int64_t, Stream);                \
  template void launch_unary_map<T, UnaryCode::sqrt>(const T*, T*, int64_t, Stream);               \
  template void launch_unary_map<T, UnaryCode::relu>(const T*, T*, int64_t, Stream);               \
  template void launch_unary_map<T, UnaryCode::sigmoid>(const T*, T*, int64_t, Stream);            \
  template void launch_unary_map<T, UnaryCode::tanh>(const T*, T*, int64_t, Stream);               \
  template void launch_unary_map<T, UnaryCode::silu>(const T*, T*, int64_t, Stream);               \
  template void launch_unary_map<T, UnaryCode::gelu>(const T*, T*, int64_t, Stream);               \
  template void launch_binary_broadcast<T, BinaryCode::add>(const T*, const T*, T*, int64_t, const BroadcastGeom&, Stream); \
  template void launch_binary_broadcast<T, BinaryCode::mul>(const T*, const T*, T*, int64_t, const BroadcastGeom&, Stream); \
  template void launch_softmax_rows<T>(const T*, T*, int64_t, int64_t, bool, Stream);              \
  template void launch_layer_norm_rows<T>(const T*, const T*, const T*, T*, float*, float*, int64_t, int64_t, float, Stream); \
  template void launch_sum_rows<T, float>(const T*, float*, int64_t, int64_t, Stream);

ADNN_UNARY_INST(float)
ADNN_UNARY_INST(__half)
ADNN_UNARY_INST(__nv_bfloat16)
template void launch_sum_rows<double, double>(const double*, double*, int64_t, int64_t, Stream);

}  // namespace adnn::kernels
