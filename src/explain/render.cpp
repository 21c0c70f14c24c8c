// Pictures of explanations (include/adnn/explain/render.hpp).
#include <adnn/explain/explain.hpp>
#include <adnn/explain/render.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

namespace adnn::explain {

namespace {

// 3×5 glyphs, one 3-bit row each (bit 2 = left column)
const std::map<char, std::array<uint8_t, 5>>& glyphs() {
  static const std::map<char, std::array<uint8_t, 5>> g = {
      {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 7, 1, 7}},
      {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}},
      {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}}, {'.', {0, 0, 0, 0, 2}}, {'%', {5, 1, 2, 4, 5}},
      {':', {0, 2, 0, 2, 0}}, {'-', {0, 0, 7, 0, 0}}, {'+', {0, 2, 7, 2, 0}}, {'/', {1, 1, 2, 4, 4}},
      {'(', {1, 2, 2, 2, 1}}, {')', {4, 2, 2, 2, 4}}, {'_', {0, 0, 0, 0, 7}}, {'=', {0, 7, 0, 7, 0}},
      {'A', {2, 5, 7, 5, 5}}, {'B', {6, 5, 6, 5, 6}}, {'C', {3, 4, 4, 4, 3}}, {'D', {6, 5, 5, 5, 6}},
      {'E', {7, 4, 6, 4, 7}}, {'F', {7, 4, 6, 4, 4}}, {'G', {3, 4, 5, 5, 3}}, {'H', {5, 5, 7, 5, 5}},
      {'I', {7, 2, 2, 2, 7}}, {'J', {1, 1, 1, 5, 2}}, {'K', {5, 5, 6, 5, 5}}, {'L', {4, 4, 4, 4, 7}},
      {'M', {5, 7, 7, 5, 5}}, {'N', {6, 5, 5, 5, 5}}, {'O', {2, 5, 5, 5, 2}}, {'P', {6, 5, 6, 4, 4}},
      {'Q', {2, 5, 5, 6, 3}}, {'R', {6, 5, 6, 5, 5}}, {'S', {3, 4, 2, 1, 6}}, {'T', {7, 2, 2, 2, 2}},
      {'U', {5, 5, 5, 5, 7}}, {'V', {5, 5, 5, 5, 2}}, {'W', {5, 5, 7, 7, 5}}, {'X', {5, 5, 2, 5, 5}},
      {'Y', {5, 5, 2, 2, 2}}, {'Z', {7, 1, 2, 4, 7}}, {' ', {0, 0, 0, 0, 0}}};
  return g;
}

data::Image to_rgb(const data::Image& im) { return im.channels == 3 ? im : data::gray_to_rgb(im); }

}  // namespace

std::array<float, 3> jet(double v) {
  v = std::clamp(v, 0.0, 1.0);
  auto ch = [v](double centre) { return float(255.0 * std::clamp(1.5 - std::abs(4.0 * v - centre), 0.0, 1.0)); };
  return {ch(3.0), ch(2.0), ch(1.0)};  // r, g, b
}

data::Image overlay_heatmap(const data::Image& face, const std::vector<double>& map, int64_t mh, int64_t mw, int zoom,
                            double image_weight) {
  ADNN_CHECK(!face.empty() && zoom >= 1 && zoom <= 64, "overlay_heatmap: empty face (", face.height, "x", face.width,
             ") or zoom ", zoom, " outside 1..64");
  const int H = face.height * zoom, W = face.width * zoom;
  data::Image base = to_rgb(zoom == 1 ? face : data::resize(face, H, W));
  const std::vector<double> m = upsample_bilinear(map, mh, mw, H, W);
  data::Image out(H, W, 3);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const auto c = jet(m[size_t(y) * size_t(W) + size_t(x)]);
      for (int k = 0; k < 3; ++k)
        out.at(y, x, k) = float(image_weight * base.at(y, x, k) + (1 - image_weight) * c[size_t(k)]);
    }
  return out;
}

void draw_text(data::Image& im, int x, int y, const std::string& s, int scale, std::array<float, 3> rgb) {
  for (char ch : s) {
    auto it = glyphs().find(char(std::toupper(static_cast<unsigned char>(ch))));
    if (it != glyphs().end())
      for (int row = 0; row < 5; ++row)
        for (int col = 0; col < 3; ++col)
          if (it->second[size_t(row)] & (4 >> col))
            for (int dy = 0; dy < scale; ++dy)
              for (int dx = 0; dx < scale; ++dx) {
                const int px = x + col * scale + dx, py = y + row * scale + dy;
                if (px < 0 || py < 0 || px >= im.width || py >= im.height) continue;
                for (int k = 0; k < im.channels && k < 3; ++k) im.at(py, px, k) = rgb[size_t(im.channels == 1 ? 0 : k)];
              }
    x += 4 * scale;
  }
}

int text_width(const std::string& s, int scale) { return s.empty() ? 0 : int(s.size()) * 4 * scale - scale; }

data::Image captioned(const data::Image& pic, const std::vector<std::string>& lines, int scale) {
  const data::Image p = to_rgb(pic);
  const int band = int(lines.size()) * 7 * scale + scale;
  data::Image out(p.height + band, p.width, 3, 0.f);
  for (int y = 0; y < p.height; ++y)
    std::copy_n(&p.pixels[size_t(y) * size_t(p.width) * 3], size_t(p.width) * 3, &out.at(y + band, 0, 0));
  for (size_t i = 0; i < lines.size(); ++i)
    draw_text(out, scale, scale + int(i) * 7 * scale, lines[i], scale, {255.f, 255.f, 255.f});
  return out;
}

data::Image grid(const std::vector<data::Image>& tiles, int cols, int pad) {
  ADNN_CHECK(!tiles.empty() && cols >= 1 && pad >= 0, "grid: no tiles, or cols ", cols, " < 1");
  const int rows = (int(tiles.size()) + cols - 1) / cols;
  int tw = 0, th = 0;
  for (const auto& t : tiles) {
    tw = std::max(tw, t.width);
    th = std::max(th, t.height);
  }
  data::Image out(pad + rows * (th + pad), pad + cols * (tw + pad), 3, 255.f);
  for (size_t i = 0; i < tiles.size(); ++i) {
    const data::Image t = to_rgb(tiles[i]);
    const int ox = pad + int(i % size_t(cols)) * (tw + pad), oy = pad + int(i / size_t(cols)) * (th + pad);
    for (int y = 0; y < t.height; ++y)
      for (int x = 0; x < t.width; ++x)
        for (int k = 0; k < 3; ++k) out.at(oy + y, ox + x, k) = t.at(y, x, k);
  }
  return out;
}

}  // namespace adnn::explain
