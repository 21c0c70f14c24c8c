#pragma once
// Images on the host: decoding (JPEG/PNG/BMP via stb), PNG writing, resizing, colour
// conversions, CLAHE. Pixels are float HWC in [0, 255] (channels 1 or 3), row-major.
#include <adnn/core/tensor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace adnn::data {

struct Image {
  int height = 0, width = 0, channels = 0;
  std::vector<float> pixels;  // (H, W, C)
  Image() = default;
  Image(int h, int w, int c, float fill = 0.f) : height(h), width(w), channels(c), pixels(size_t(h) * w * c, fill) {}
  float& at(int y, int x, int c = 0) { return pixels[(size_t(y) * width + x) * channels + c]; }
  float at(int y, int x, int c = 0) const { return pixels[(size_t(y) * width + x) * channels + c]; }
  bool empty() const { return pixels.empty(); }
};

// Input limits (docs/limits.md), checked before anything the size of the image is allocated:
// each side at most kMaxImageSide pixels, the decoded image (width x height x channels floats)
// at most kMaxImageBytes, the file at most kMaxImageFileBytes.
inline constexpr int kMaxImageSide = 8192;
inline constexpr uint64_t kMaxImageBytes = uint64_t(256) << 20;      // 256 MiB
inline constexpr uint64_t kMaxImageFileBytes = uint64_t(256) << 20;  // 256 MiB

// Decodes a JPEG, PNG or BMP file; `channels` 0 keeps the file's (gray stays 1, colour
// becomes 3), 1 or 3 converts. Raises adnn::Error naming the path (or `name`) for: a missing
// file, a directory or other non-regular file, another format, a size over the limits above,
// a truncated file (PNG without IEND or with a cut chunk, JPEG without its end-of-image
// marker, BMP shorter than its pixel array), a PNG chunk whose CRC does not match, and any
// error stb reports (its reason in the message). A byte changed inside a JPEG's compressed
// data cannot be detected (the format has no checksum) and may decode to different pixels.
Image read_image(const std::string& path, int channels = 0);
Image decode_image(const uint8_t* bytes, size_t n, const std::string& name, int channels = 0);
// CRC-32 as PNG and zlib define it (used to check PNG chunks).
uint32_t png_crc32(const uint8_t* p, size_t n);
// Writes an 8-bit PNG (values rounded and clamped to [0, 255]) atomically: encoded in
// memory, then io::write_file_atomic (a temporary file renamed over `path`), so a reader
// never sees a partial file.
void write_png(const std::string& path, const Image& img);
// The PNG file's bytes; `name` labels errors.
std::vector<uint8_t> encode_png(const Image& img, const std::string& name = "image");

enum class Resample { bilinear, bicubic };
// Half-pixel resampling (as torch / OpenCV); bicubic uses A = -0.75; results are clamped
// to [0, 255].
Image resize(const Image& img, int height, int width, Resample mode = Resample::bilinear);

Image gray_to_rgb(const Image& g);
Image rgb_to_gray(const Image& rgb);  // 0.299 R + 0.587 G + 0.114 B
// sRGB (0..255) <-> CIE L*a*b* (D65), L in [0, 100], a/b about [-128, 127], as OpenCV's
// float conversion.
Image rgb_to_lab(const Image& rgb);
Image lab_to_rgb(const Image& lab);

// Contrast-limited adaptive histogram equalisation of an 8-bit plane, as OpenCV's CLAHE:
// tiles_x × tiles_y tiles, clip limit `clip` × (tile area / 256) (at least 1), excess
// redistributed evenly, per-tile LUTs blended bilinearly between tile centres. The plane's
// values are rounded to 0..255 first.
Image clahe(const Image& plane, double clip = 2.0, int tiles_x = 8, int tiles_y = 8);
// The paper's preprocessing step: CLAHE on the L channel of LAB (L scaled to 0..255 as an
// 8-bit plane, as OpenCV does), for gray or RGB images; returns the same channel count.
Image clahe_lab(const Image& img, double clip = 2.0, int tiles = 8);

// (H, W, C) float tensor of the pixels (values unchanged).
Tensor to_tensor(const Image& img);
Image from_tensor(const Tensor& t);  // (H, W, C) any float dtype, any device

}  // namespace adnn::data
