#include <adnn/core/device.hpp>
#include <adnn/core/error.hpp>
#include <adnn/core/parse.hpp>

#include <adnn/config.hpp>
#if defined(ADNN_WITH_CUDA_RUNTIME) && !ADNN_WITH_CUDA_EMULATION
#include <cuda_runtime_api.h>
#endif

namespace adnn {

Device Device::parse(const std::string& spec) {
  // str() of an emulated device reads back ("cuda:0 (emulated)" -> cuda:0)
  const std::string_view suffix = " (emulated)";
  std::string s = spec;
  if (s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0 &&
      s.rfind("cuda", 0) == 0)
    s.resize(s.size() - suffix.size());
  if (s == "cpu") return Device(DeviceType::cpu, 0);
  if (s == "cuda") return Device(DeviceType::cuda, 0);
  if (s.rfind("cuda:", 0) == 0) {
    std::string idx = s.substr(5);
    ADNN_CHECK(!idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos,
               "Device: bad device string '", s, "' (expected cpu, cuda or cuda:N)");
    return Device(DeviceType::cuda, int(parse_int64(idx, "Device '" + s + "': index", 0, 1023)));
  }
  ADNN_FAIL("Device: bad device string '", s, "' (expected cpu, cuda or cuda:N)");
}

std::string Device::str() const {
  if (is_cpu()) return "cpu";
  return "cuda:" + std::to_string(index) + (cuda_is_emulated() ? " (emulated)" : "");
}

bool cuda_is_emulated() {
#if ADNN_WITH_CUDA_EMULATION
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#if ADNN_WITH_CUDA_EMULATION
  return 1;
#elif defined(ADNN_WITH_CUDA_RUNTIME)
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
#else
  return 0;
#endif
}

bool cuda_is_available() {
#if ADNN_WITH_CUDA_BACKEND
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

namespace detail {
void check_device_available(Device d) {
  if (d.is_cpu()) return;
  int n = cuda_device_count();
#if ADNN_WITH_CUDA_BACKEND
  if (n > 0) {
    ADNN_CHECK(d.index == 0, "CUDA device ", d.str(), ": adnn uses one GPU, cuda:0 (", n, " visible)");
    return;
  }
#endif
  if (n == 0)
    ADNN_FAIL("no CUDA device: a tensor on ", d.str(),
              " was requested but this machine has no usable GPU (build with "
              "-DADNN_CUDA_EMULATION=ON to emulate one, or use cpu)");
  ADNN_FAIL("CUDA device ", d.str(), ": this build of adnn has no CUDA tensor backend yet (",
            n, " GPU(s) visible)");
}
}  // namespace detail

}  // namespace adnn
