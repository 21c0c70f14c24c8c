// Image I/O and pixel operations (see include/adnn/data/image.hpp).
#include <adnn/data/image.hpp>
#include <adnn/io/safetensors.hpp>
#include <adnn/ops/ops.hpp>

#include <jpeglib.h>
#include <stb_image.h>
#include <stb_image_write.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>

namespace adnn::data {

uint32_t png_crc32(const uint8_t* p, size_t n) {
  // CRC-32 (ISO-HDLC: polynomial 0xEDB88320 reflected, init and final xor 0xFFFFFFFF), as
  // PNG chunks and zlib use. A 1 KiB table computed at compile time; written here rather than
  // taken from zlib so the library and its installed package gain no dependency for 20 lines.
  static constexpr auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

namespace {

enum class Format { jpeg, png, bmp, unknown };

Format sniff(const uint8_t* b, size_t n) {
  static constexpr uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n >= 8 && std::memcmp(b, png_sig, 8) == 0) return Format::png;
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return Format::jpeg;
  if (n >= 2 && b[0] == 'B' && b[1] == 'M') return Format::bmp;
  return Format::unknown;
}

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
uint32_t le32(const uint8_t* p) { return uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]; }
uint32_t le16(const uint8_t* p) { return uint32_t(p[1]) << 8 | p[0]; }

// Every chunk complete, every CRC right, an IEND present (stb checks none of these: a
// truncated or bit-flipped PNG can decode to wrong pixels without an error).
void check_png(const uint8_t* b, size_t n, const std::string& name) {
  size_t pos = 8;
  for (;;) {
    ADNN_CHECK(n - pos >= 12, "read_image: ", name, " is a truncated PNG (", n - pos,
               " bytes where a chunk should start at byte ", pos, "; no IEND chunk)");
    const uint32_t len = be32(b + pos);
    std::string type(reinterpret_cast<const char*>(b + pos + 4), 4);
    for (char& ch : type)
      if (!std::isalpha(static_cast<unsigned char>(ch))) ch = '?';
    ADNN_CHECK(len <= n - pos - 12, "read_image: ", name, " is a truncated PNG (chunk '", type, "' at byte ", pos,
               " declares ", len, " bytes, ", n - pos - 12, " remain)");
    ADNN_CHECK(png_crc32(b + pos + 4, size_t(len) + 4) == be32(b + pos + 8 + len), "read_image: ", name,
               " is a corrupt PNG (CRC mismatch in chunk '", type, "' at byte ", pos, ")");
    pos += 12 + size_t(len);
    if (type == "IEND") return;
  }
}

// The marker segments up to the first scan are complete, and an end-of-image marker follows
// the scan data (stb decodes a truncated JPEG without an error, filling the rest with gray).
// In entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so the
// first FF D9 after the first scan header is an EOI marker.
void check_jpeg(const uint8_t* b, size_t n, const std::string& name) {
  size_t pos = 2;
  for (;;) {
    ADNN_CHECK(pos + 2 <= n, "read_image: ", name, " is a truncated JPEG (it ends at byte ", n,
               " before the image data)");
    ADNN_CHECK(b[pos] == 0xFF, "read_image: ", name, " is a corrupt JPEG (no marker at byte ", pos, ")");
    const uint8_t m = b[pos + 1];
    if (m == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) {  // markers without a length
      pos += 2;
      continue;
    }
    ADNN_CHECK(m != 0xD9, "read_image: ", name, " is a corrupt JPEG (end of image at byte ", pos,
               " before any image data)");
    ADNN_CHECK(pos + 4 <= n, "read_image: ", name, " is a truncated JPEG (it ends inside the marker at byte ", pos, ")");
    const size_t len = size_t(b[pos + 2]) << 8 | b[pos + 3];
    ADNN_CHECK(len >= 2 && len <= n - pos - 2, "read_image: ", name, " is a truncated JPEG (segment at byte ", pos,
               " declares ", len, " bytes, ", n - pos - 2, " remain)");
    pos += 2 + len;
    if (m == 0xDA) break;  // start of scan
  }
  for (size_t i = pos; i + 1 < n; ++i)
    if (b[i] == 0xFF && b[i + 1] == 0xD9) return;
  ADNN_FAIL("read_image: ", name, " is a truncated JPEG (no end-of-image marker after the image data)");
}

// The pixel array an uncompressed BMP declares lies inside the file (stb reads past the end
// as zeros: a BMP cut after its header decodes to a black image). Sizes over the limits are
// left to the limit check (so the products below cannot overflow).
void check_bmp(const uint8_t* b, size_t n, const std::string& name) {
  ADNN_CHECK(n >= 26, "read_image: ", name, " is a truncated BMP (", n, " bytes, shorter than its header)");
  const uint32_t off = le32(b + 10), hsz = le32(b + 14);
  uint64_t w = 0, h = 0, bpp = 0, compression = 0;
  if (hsz == 12) {
    w = le16(b + 18);
    h = le16(b + 20);
    bpp = le16(b + 24);
  } else {
    ADNN_CHECK(n >= 34, "read_image: ", name, " is a truncated BMP (", n, " bytes, shorter than its header)");
    const int32_t sw = int32_t(le32(b + 18)), sh = int32_t(le32(b + 22));
    w = uint64_t(sw < 0 ? -int64_t(sw) : sw);
    h = uint64_t(sh < 0 ? -int64_t(sh) : sh);
    bpp = le16(b + 28);
    compression = le32(b + 30);
  }
  // BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: rows of ceil(w * bpp / 32) 32-bit words
  if (compression != 0 && compression != 3 && compression != 6) return;  // stb refuses these itself
  if (w > uint64_t(kMaxImageSide) || h > uint64_t(kMaxImageSide)) return;
  const uint64_t row = (w * bpp + 31) / 32 * 4, need = uint64_t(off) + row * h;
  ADNN_CHECK(n >= need, "read_image: ", name, " is a truncated BMP (its ", w, "x", h, "x", bpp, "-bit pixels end at byte ",
             need, ", the file has ", n, ")");
}

// ---------------------------------------------------------------- JPEG (libjpeg-turbo)
// libjpeg reports errors through error_exit, which must not return: it longjmps back to
// decode_jpeg, which then throws. Warnings of corrupt data (libjpeg would go on, filling the
// rest with gray, e.g. a truncated file) are errors here too. No C++ object is created
// between setjmp and a longjmp (all live before setjmp), so no destructor is skipped.
struct JpegErrors {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};
[[noreturn]] void jpeg_error_exit(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegErrors*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}
void jpeg_emit_message(j_common_ptr c, int level) {
  if (level < 0) jpeg_error_exit(c);  // a warning: corrupt or truncated data
}
struct JpegDecompress {  // destroys the decompressor however decode_jpeg leaves
  jpeg_decompress_struct d{};
  bool created = false;
  ~JpegDecompress() {
    if (created) jpeg_destroy_decompress(&d);
  }
};

void check_decoded_size(int w, int h, int want, const std::string& name) {
  ADNN_CHECK(w > 0 && h > 0, "read_image: ", name, " has a bad size ", w, "x", h);
  ADNN_CHECK(w <= kMaxImageSide && h <= kMaxImageSide, "read_image: ", name, " is ", w, "x", h,
             ", larger than the limit of ", kMaxImageSide, " pixels a side");
  // (the decoder's own buffers, w * h * c bytes with c <= 4, are no larger than the floats)
  const uint64_t decoded = uint64_t(w) * uint64_t(h) * uint64_t(want) * sizeof(float);
  ADNN_CHECK(decoded <= kMaxImageBytes, "read_image: ", name, " is ", w, "x", h, "x", want, ": ", decoded,
             " bytes decoded, more than the limit of ", kMaxImageBytes);
}

Image decode_jpeg(const uint8_t* bytes, size_t n, const std::string& name, int channels) {
  JpegErrors err;
  JpegDecompress j;
  Image img;
  std::vector<uint8_t> row;
  int want = 0;
  j.d.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_emit_message;
  if (setjmp(err.jump)) ADNN_FAIL("read_image: cannot decode ", name, " (", err.message, ")");
  jpeg_create_decompress(&j.d);
  j.created = true;
  jpeg_mem_src(&j.d, bytes, static_cast<unsigned long>(n));
  jpeg_read_header(&j.d, TRUE);
  const J_COLOR_SPACE cs = j.d.jpeg_color_space;
  ADNN_CHECK(cs == JCS_GRAYSCALE || cs == JCS_YCbCr || cs == JCS_RGB, "read_image: ", name,
             " is a JPEG in an unsupported colour space (", int(cs), "; CMYK and YCCK are not read)");
  want = channels ? channels : (j.d.num_components == 1 ? 1 : 3);
  // limits before anything the size of the image is allocated (by libjpeg or here)
  check_decoded_size(int(std::min<JDIMENSION>(j.d.image_width, 1u << 30)),
                     int(std::min<JDIMENSION>(j.d.image_height, 1u << 30)), want, name);
  j.d.out_color_space = want == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&j.d);
  const int w = int(j.d.output_width), h = int(j.d.output_height);
  ADNN_CHECK(j.d.output_components == want && w == int(j.d.image_width) && h == int(j.d.image_height), "read_image: ",
             name, " decoded to ", w, "x", h, "x", j.d.output_components, " but its header says ", j.d.image_width,
             "x", j.d.image_height, "x", want);
  img = Image(h, w, want);
  row.resize(size_t(w) * size_t(want));
  while (j.d.output_scanline < j.d.output_height) {
    JSAMPROW p = row.data();
    const size_t y = j.d.output_scanline;
    if (jpeg_read_scanlines(&j.d, &p, 1) != 1) ADNN_FAIL("read_image: ", name, " ends inside its image data");
    std::transform(row.begin(), row.end(), img.pixels.begin() + std::ptrdiff_t(y * row.size()),
                   [](uint8_t v) { return float(v); });
  }
  jpeg_finish_decompress(&j.d);
  return img;
}

}  // namespace

Image decode_image(const uint8_t* bytes, size_t n, const std::string& name, int channels) {
  ADNN_CHECK(channels == 0 || channels == 1 || channels == 3, "read_image: channels must be 0, 1 or 3, got ",
             channels);
  ADNN_CHECK(n > 0, "read_image: ", name, " is empty");
  ADNN_CHECK(n <= kMaxImageFileBytes, "read_image: ", name, " has ", n, " bytes, more than the limit of ",
             kMaxImageFileBytes);
  const Format fmt = sniff(bytes, n);
  ADNN_CHECK(fmt != Format::unknown, "read_image: ", name, " is not a readable image (not a JPEG, PNG or BMP file)");
  if (fmt == Format::jpeg) {
    check_jpeg(bytes, n, name);
    return decode_jpeg(bytes, n, name, channels);
  }
  if (fmt == Format::png) check_png(bytes, n, name);
  if (fmt == Format::bmp) check_bmp(bytes, n, name);
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_memory(bytes, int(n), &w, &h, &c))
    ADNN_FAIL("read_image: ", name, " is not a readable image (", stbi_failure_reason(), ")");
  const int want = channels ? channels : (c <= 2 ? 1 : 3);
  // limits before anything the size of the image is allocated (by stb or here)
  check_decoded_size(w, h, want, name);
  const int info_w = w, info_h = h;
  unsigned char* data = stbi_load_from_memory(bytes, int(n), &w, &h, &c, want);
  if (!data) ADNN_FAIL("read_image: cannot decode ", name, " (", stbi_failure_reason(), ")");
  if (w != info_w || h != info_h) {
    stbi_image_free(data);
    ADNN_FAIL("read_image: ", name, " decoded to ", w, "x", h, " but its header says ", info_w, "x", info_h);
  }
  Image img(h, w, want);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = float(data[i]);
  stbi_image_free(data);
  return img;
}

Image read_image(const std::string& path, int channels) {
  const std::vector<uint8_t> bytes = io::read_file(path, kMaxImageFileBytes);
  return decode_image(bytes.data(), bytes.size(), path, channels);
}

std::vector<uint8_t> encode_png(const Image& img, const std::string& name) {
  ADNN_CHECK(!img.empty() && (img.channels == 1 || img.channels == 3 || img.channels == 4) &&
                 img.pixels.size() == size_t(img.height) * size_t(img.width) * size_t(img.channels),
             "write_png: bad image for ", name, " (", img.height, "x", img.width, "x", img.channels, ")");
  std::vector<uint8_t> b(img.pixels.size());
  for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t(std::clamp(std::lround(img.pixels[i]), 0L, 255L));
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  ADNN_CHECK(stbi_write_png_to_func(sink, &out, img.width, img.height, img.channels, b.data(), img.width * img.channels),
             "write_png: cannot encode ", name);
  return out;
}

void write_png(const std::string& path, const Image& img) { io::write_file_atomic(path, encode_png(img, path)); }

Tensor to_tensor(const Image& img) {
  Tensor t = empty({img.height, img.width, img.channels});
  std::copy(img.pixels.begin(), img.pixels.end(), t.data_ptr<float>());
  return t;
}

Image from_tensor(const Tensor& t0) {
  ADNN_CHECK(t0.dim() == 3, "from_tensor: expected (H, W, C), got ", t0.desc());
  Tensor t = t0.detach().to(kCPU).to(DType::f32).contiguous();
  Image img(int(t.size(0)), int(t.size(1)), int(t.size(2)));
  std::copy(t.data_ptr<float>(), t.data_ptr<float>() + t.numel(), img.pixels.begin());
  return img;
}

Image resize(const Image& img, int height, int width, Resample mode) {
  ADNN_CHECK(height > 0 && width > 0, "resize: bad size ", height, "x", width);
  if (height == img.height && width == img.width) return img;
  NoGradGuard ng;
  Tensor x = to_tensor(img).unsqueeze(0);
  Tensor y = interpolate(x, height, width, mode == Resample::bilinear ? InterpMode::bilinear : InterpMode::bicubic);
  Image out = from_tensor(y.squeeze(0));
  for (auto& v : out.pixels) v = std::clamp(v, 0.f, 255.f);
  return out;
}

Image gray_to_rgb(const Image& g) {
  ADNN_CHECK(g.channels == 1, "gray_to_rgb: expected 1 channel, got ", g.channels);
  Image o(g.height, g.width, 3);
  for (size_t i = 0; i < g.pixels.size(); ++i) o.pixels[3 * i] = o.pixels[3 * i + 1] = o.pixels[3 * i + 2] = g.pixels[i];
  return o;
}

Image rgb_to_gray(const Image& rgb) {
  ADNN_CHECK(rgb.channels == 3, "rgb_to_gray: expected 3 channels, got ", rgb.channels);
  Image o(rgb.height, rgb.width, 1);
  for (size_t i = 0; i < o.pixels.size(); ++i)
    o.pixels[i] = 0.299f * rgb.pixels[3 * i] + 0.587f * rgb.pixels[3 * i + 1] + 0.114f * rgb.pixels[3 * i + 2];
  return o;
}

namespace {
// sRGB companding
float srgb_to_linear(float v) {
  v /= 255.f;
  return v <= 0.04045f ? v / 12.92f : std::pow((v + 0.055f) / 1.055f, 2.4f);
}
float linear_to_srgb(float v) {
  v = std::clamp(v, 0.f, 1.f);
  return 255.f * (v <= 0.0031308f ? 12.92f * v : 1.055f * std::pow(v, 1.f / 2.4f) - 0.055f);
}
constexpr float kXn = 0.950456f, kZn = 1.088754f;
float lab_f(float t) { return t > 0.008856f ? std::cbrt(t) : 7.787f * t + 16.f / 116.f; }
float lab_finv(float f) {
  float t = f * f * f;
  return t > 0.008856f ? t : (f - 16.f / 116.f) / 7.787f;
}
}  // namespace

Image rgb_to_lab(const Image& rgb) {
  ADNN_CHECK(rgb.channels == 3, "rgb_to_lab: expected 3 channels, got ", rgb.channels);
  Image o(rgb.height, rgb.width, 3);
  for (size_t i = 0; i < size_t(rgb.height) * rgb.width; ++i) {
    float r = srgb_to_linear(rgb.pixels[3 * i]), g = srgb_to_linear(rgb.pixels[3 * i + 1]),
          b = srgb_to_linear(rgb.pixels[3 * i + 2]);
    float X = (0.412453f * r + 0.357580f * g + 0.180423f * b) / kXn;
    float Y = 0.212671f * r + 0.715160f * g + 0.072169f * b;
    float Z = (0.019334f * r + 0.119193f * g + 0.950227f * b) / kZn;
    float fx = lab_f(X), fy = lab_f(Y), fz = lab_f(Z);
    o.pixels[3 * i] = Y > 0.008856f ? 116.f * fy - 16.f : 903.3f * Y;
    o.pixels[3 * i + 1] = 500.f * (fx - fy);
    o.pixels[3 * i + 2] = 200.f * (fy - fz);
  }
  return o;
}

Image lab_to_rgb(const Image& lab) {
  ADNN_CHECK(lab.channels == 3, "lab_to_rgb: expected 3 channels, got ", lab.channels);
  Image o(lab.height, lab.width, 3);
  for (size_t i = 0; i < size_t(lab.height) * lab.width; ++i) {
    float L = lab.pixels[3 * i], a = lab.pixels[3 * i + 1], b = lab.pixels[3 * i + 2];
    float Y = L > 8.f ? std::pow((L + 16.f) / 116.f, 3.f) : L / 903.3f;
    float fy = L > 8.f ? (L + 16.f) / 116.f : 7.787f * Y + 16.f / 116.f;
    float X = lab_finv(fy + a / 500.f) * kXn, Z = lab_finv(fy - b / 200.f) * kZn;
    float r = 3.240479f * X - 1.53715f * Y - 0.498535f * Z;
    float g = -0.969256f * X + 1.875991f * Y + 0.041556f * Z;
    float bl = 0.055648f * X - 0.204043f * Y + 1.057311f * Z;
    o.pixels[3 * i] = linear_to_srgb(r);
    o.pixels[3 * i + 1] = linear_to_srgb(g);
    o.pixels[3 * i + 2] = linear_to_srgb(bl);
  }
  return o;
}

Image clahe(const Image& plane, double clip, int tiles_x, int tiles_y) {
  ADNN_CHECK(plane.channels == 1, "clahe: expected a single-channel plane, got ", plane.channels, " channels");
  ADNN_CHECK(tiles_x > 0 && tiles_y > 0 && clip > 0, "clahe: bad parameters");
  const int H = plane.height, W = plane.width;
  // pad to a multiple of the tile grid by reflection (OpenCV: BORDER_REFLECT_101)
  const int PH = (H + tiles_y - 1) / tiles_y * tiles_y, PW = (W + tiles_x - 1) / tiles_x * tiles_x;
  auto reflect = [](int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
  };
  std::vector<uint8_t> src(size_t(PH) * PW);
  for (int y = 0; y < PH; ++y)
    for (int x = 0; x < PW; ++x)
      src[size_t(y) * PW + x] =
          uint8_t(std::clamp(std::lround(plane.pixels[size_t(reflect(y, H)) * W + reflect(x, W)]), 0L, 255L));
  const int tw = PW / tiles_x, th = PH / tiles_y, area = tw * th;
  int limit = std::max(1, int(clip * area / 256));
  const float lut_scale = 255.f / float(area);
  std::vector<std::array<uint8_t, 256>> luts(size_t(tiles_x) * tiles_y);
  for (int ty = 0; ty < tiles_y; ++ty)
    for (int tx = 0; tx < tiles_x; ++tx) {
      std::array<int, 256> hist{};
      for (int y = ty * th; y < (ty + 1) * th; ++y)
        for (int x = tx * tw; x < (tx + 1) * tw; ++x) hist[src[size_t(y) * PW + x]]++;
      int clipped = 0;
      for (int& h : hist)
        if (h > limit) {
          clipped += h - limit;
          h = limit;
        }
      const int batch = clipped / 256;
      int residual = clipped - batch * 256;
      for (int& h : hist) h += batch;
      if (residual) {
        const int step = std::max(256 / residual, 1);
        for (int i = 0; i < 256 && residual > 0; i += step, --residual) hist[i]++;
      }
      int sum = 0;
      auto& lut = luts[size_t(ty) * tiles_x + tx];
      for (int i = 0; i < 256; ++i) {
        sum += hist[i];
        lut[i] = uint8_t(std::clamp(std::lround(float(sum) * lut_scale), 0L, 255L));
      }
    }
  Image out(H, W, 1);
  const float inv_tw = 1.f / float(tw), inv_th = 1.f / float(th);
  for (int y = 0; y < H; ++y) {
    float tyf = float(y) * inv_th - 0.5f;
    int ty1 = int(std::floor(tyf)), ty2 = ty1 + 1;
    float ya = tyf - float(ty1), ya1 = 1.f - ya;
    ty1 = std::max(ty1, 0);
    ty2 = std::min(ty2, tiles_y - 1);
    for (int x = 0; x < W; ++x) {
      float txf = float(x) * inv_tw - 0.5f;
      int tx1 = int(std::floor(txf)), tx2 = tx1 + 1;
      float xa = txf - float(tx1), xa1 = 1.f - xa;
      tx1 = std::max(tx1, 0);
      tx2 = std::min(tx2, tiles_x - 1);
      const int v = src[size_t(y) * PW + x];
      float r = (luts[size_t(ty1) * tiles_x + tx1][v] * xa1 + luts[size_t(ty1) * tiles_x + tx2][v] * xa) * ya1 +
                (luts[size_t(ty2) * tiles_x + tx1][v] * xa1 + luts[size_t(ty2) * tiles_x + tx2][v] * xa) * ya;
      out.pixels[size_t(y) * W + x] = float(std::clamp(std::lround(r), 0L, 255L));
    }
  }
  return out;
}

Image clahe_lab(const Image& img, double clip, int tiles) {
  ADNN_CHECK(img.channels == 1 || img.channels == 3, "clahe_lab: expected 1 or 3 channels, got ", img.channels);
  if (img.channels == 1) {
    // For gray pixels a = b = 0, so L depends on the gray level only: two 256-entry tables
    // give exactly the RGB -> LAB -> CLAHE(L) -> RGB path.
    static const std::array<std::array<float, 256>, 2> tables = [] {
      std::array<std::array<float, 256>, 2> t{};
      Image ramp(1, 256, 3);
      for (int v = 0; v < 256; ++v) ramp.at(0, v, 0) = ramp.at(0, v, 1) = ramp.at(0, v, 2) = float(v);
      Image lab = rgb_to_lab(ramp);
      Image back(1, 256, 3);
      for (int v = 0; v < 256; ++v) {
        t[0][v] = lab.at(0, v, 0) * 255.f / 100.f;  // gray -> 8-bit L
        back.at(0, v, 0) = float(v) * 100.f / 255.f;  // 8-bit L -> L, a = b = 0
      }
      Image rgb = lab_to_rgb(back);
      for (int v = 0; v < 256; ++v) t[1][v] = rgb.at(0, v, 0);  // 8-bit L -> gray
      return t;
    }();
    Image L(img.height, img.width, 1);
    for (size_t i = 0; i < L.pixels.size(); ++i)
      L.pixels[i] = tables[0][size_t(std::clamp(std::lround(img.pixels[i]), 0L, 255L))];
    Image eq = clahe(L, clip, tiles, tiles);
    for (auto& v : eq.pixels) v = std::round(tables[1][size_t(v)]);
    return eq;
  }
  Image lab = rgb_to_lab(img);
  Image L(img.height, img.width, 1);
  for (size_t i = 0; i < L.pixels.size(); ++i) L.pixels[i] = lab.pixels[3 * i] * 255.f / 100.f;
  Image eq = clahe(L, clip, tiles, tiles);
  for (size_t i = 0; i < L.pixels.size(); ++i) lab.pixels[3 * i] = eq.pixels[i] * 100.f / 255.f;
  Image rgb = lab_to_rgb(lab);
  for (auto& v : rgb.pixels) v = std::clamp(std::round(v), 0.f, 255.f);
  return rgb;
}

}  // namespace adnn::data
