// Launch-failure reporting for the real CUDA build (kernels/common.cuh's launch_impl).
#include "cuda/launch.hpp"

#if defined(__CUDACC__)
namespace adnn::kernels {
void cuda_launch_failed(cudaError_t e, const char* kernel, const char* file, int line) {
  const char* base = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') base = p + 1;
  throw Error(detail::cat("kernel launch ", kernel, " failed: ", cudaGetErrorString(e), " [", base, ":", line, "]"));
}
}  // namespace adnn::kernels
#endif
