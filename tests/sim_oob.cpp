// ASan build only: an emulated kernel that reads one element past the end of its input
// must be reported by AddressSanitizer with this kernel's source line. CTest expects the
// report (see tests/CMakeLists.txt); a clean exit is a failure.
#include <cstdio>
#include <vector>

#include "kernels/common.cuh"

__global__ void read_past_end_kernel(const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  y[i] = x[i + 1];  // the last thread reads x[n]: out of bounds
}

int main() {
  const int n = 256;
  float* x = new float[n];
  float* y = new float[n];
  for (int i = 0; i < n; ++i) x[i] = float(i);
  adnn::sim::register_device_memory(x, n * sizeof(float));
  adnn::sim::register_device_memory(y, n * sizeof(float));
  ADNN_LAUNCH(read_past_end_kernel, dim3(2), dim3(128), 0, nullptr, x, y, n);
  std::printf("no out-of-bounds report: y[n-1] = %f\n", double(y[n - 1]));
  delete[] x;
  delete[] y;
  return 0;
}
