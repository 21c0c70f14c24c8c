// libFuzzer harness: the FER2013 CSV parser, from memory. The first byte picks the usage
// filter. Every accepted row has a label 0..6 and 48x48 pixels.
#include <adnn/data/dataset.hpp>

#include <cstddef>
#include <cstdint>
#include <sstream>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* usages[] = {"", "Training", "PublicTest", "PrivateTest"};
  std::istringstream in(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  try {
    adnn::data::Fer2013Csv csv(in, "fuzz.csv", usages[data[0] % 4]);
    for (int64_t i = 0; i < csv.size(); ++i) {
      if (csv.label(i) < 0 || csv.label(i) > 6) __builtin_trap();
      const adnn::data::Image img = csv.load(i);
      if (img.height != 48 || img.width != 48 || img.channels != 1) __builtin_trap();
    }
  } catch (const adnn::Error&) {
  }
  return 0;
}
