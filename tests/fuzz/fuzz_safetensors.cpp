// libFuzzer harness: the safetensors parser, and every metadata value through the number
// parser as checkpoint loading reads them. Any adnn::Error is a correct rejection; a crash,
// a sanitizer report, a hang or another exception type is a bug.
#include <adnn/core/parse.hpp>
#include <adnn/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const adnn::io::SafeTensors st = adnn::io::parse_safetensors(std::vector<uint8_t>(data, data + size), "fuzz");
    size_t bytes = 0;
    for (auto& [name, t] : st.tensors) bytes += size_t(t.numel()) * t.element_size();
    if (bytes > size) __builtin_trap();  // tensor data must come from the file
    for (auto& [k, v] : st.metadata) {
      try {
        adnn::parse_int64(v, k);
      } catch (const adnn::Error&) {
      }
      try {
        adnn::parse_double(v, k, adnn::NonFinite::allow);
      } catch (const adnn::Error&) {
      }
    }
  } catch (const adnn::Error&) {
  }
  return 0;
}
