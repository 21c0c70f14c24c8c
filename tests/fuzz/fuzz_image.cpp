// libFuzzer harness: the image decoders (JPEG, PNG, BMP via stb, behind adnn's own checks)
// from memory. The first byte picks the requested channels (0, 1 or 3) and, with bit 2 set,
// rewrites every PNG chunk's CRC before decoding: otherwise nearly every mutation of a PNG
// stops at the CRC check and stb's PNG decoder behind it is barely reached.
#include <adnn/data/image.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {
void fix_png_crcs(std::vector<uint8_t>& b) {
  static constexpr uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() < 8 || std::memcmp(b.data(), sig, 8) != 0) return;
  size_t pos = 8;
  while (b.size() - pos >= 12) {
    const uint32_t len = uint32_t(b[pos]) << 24 | uint32_t(b[pos + 1]) << 16 | uint32_t(b[pos + 2]) << 8 | b[pos + 3];
    if (len > b.size() - pos - 12) return;
    const uint32_t crc = adnn::data::png_crc32(b.data() + pos + 4, size_t(len) + 4);
    for (int i = 0; i < 4; ++i) b[pos + 8 + len + size_t(i)] = uint8_t(crc >> (24 - 8 * i));
    pos += 12 + size_t(len);
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int channels = data[0] % 3 == 2 ? 3 : data[0] % 3;
  std::vector<uint8_t> bytes(data + 1, data + size);
  if (data[0] & 4) fix_png_crcs(bytes);
  try {
    const adnn::data::Image img = adnn::data::decode_image(bytes.data(), bytes.size(), "fuzz", channels);
    if (img.width <= 0 || img.height <= 0 || img.width > adnn::data::kMaxImageSide ||
        img.height > adnn::data::kMaxImageSide || img.pixels.size() != size_t(img.width) * img.height * img.channels)
      __builtin_trap();
  } catch (const adnn::Error&) {
  }
  return 0;
}
