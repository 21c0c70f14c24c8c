// Preprocessing and augmentation (see include/adnn/data/transforms.hpp).
#include <adnn/data/transforms.hpp>

#include <algorithm>
#include <cmath>

namespace adnn::data {

AugmentOptions AugmentOptions::none() {
  AugmentOptions o;
  o.hflip = o.crop = o.jitter = o.rotate = o.noise = o.cutout = o.mixup = false;
  return o;
}

Image preprocess(const Image& img, const PreprocessOptions& o) {
  ADNN_CHECK(o.channels == 1 || o.channels == 3, "preprocess: channels must be 1 or 3, got ", o.channels);
  Image x = img;
  if (x.channels == 3 && o.channels == 1) x = rgb_to_gray(x);
  if (o.clahe) x = clahe_lab(x, o.clip, o.tiles);
  x = resize(x, o.size, o.size, o.resample);
  if (x.channels == 1 && o.channels == 3) x = gray_to_rgb(x);
  return x;
}

Image hflip(const Image& img) {
  Image o(img.height, img.width, img.channels);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      for (int c = 0; c < img.channels; ++c) o.at(y, x, c) = img.at(y, img.width - 1 - x, c);
  return o;
}

Image crop_resize(const Image& img, int y0, int x0, int h, int w, int out_h, int out_w) {
  ADNN_CHECK(y0 >= 0 && x0 >= 0 && h > 0 && w > 0 && y0 + h <= img.height && x0 + w <= img.width,
             "crop_resize: window (", y0, ", ", x0, ", ", h, ", ", w, ") outside a ", img.height, "x", img.width,
             " image");
  Image c(h, w, img.channels);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < img.channels; ++k) c.at(y, x, k) = img.at(y0 + y, x0 + x, k);
  return resize(c, out_h, out_w, Resample::bilinear);
}

Image rotate(const Image& img, double degrees) {
  const double a = degrees * M_PI / 180.0, ca = std::cos(a), sa = std::sin(a);
  const double cy = (img.height - 1) / 2.0, cx = (img.width - 1) / 2.0;
  Image o(img.height, img.width, img.channels, 0.f);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      // counter-clockwise on screen (y down), as torchvision: source = R(a) (dst - centre) + centre
      const double dx = x - cx, dy = y - cy;
      const double sx = ca * dx - sa * dy + cx, sy = sa * dx + ca * dy + cy;
      const int x0 = int(std::floor(sx)), y0 = int(std::floor(sy));
      const double fx = sx - x0, fy = sy - y0;
      for (int c = 0; c < img.channels; ++c) {
        double v = 0;
        for (int j = 0; j < 2; ++j)
          for (int i = 0; i < 2; ++i) {
            const int yy = y0 + j, xx = x0 + i;
            if (yy < 0 || yy >= img.height || xx < 0 || xx >= img.width) continue;
            v += (j ? fy : 1 - fy) * (i ? fx : 1 - fx) * img.at(yy, xx, c);
          }
        o.at(y, x, c) = float(v);
      }
    }
  return o;
}

namespace {
Image clamp255(Image img) {
  for (auto& v : img.pixels) v = std::clamp(v, 0.f, 255.f);
  return img;
}
}  // namespace

Image adjust_brightness(const Image& img, double f) {
  Image o = img;
  for (auto& v : o.pixels) v = float(v * f);
  return clamp255(std::move(o));
}

Image adjust_contrast(const Image& img, double f) {
  const Image g = img.channels == 3 ? rgb_to_gray(img) : img;
  double mean = 0;
  for (float v : g.pixels) mean += v;
  mean /= double(g.pixels.size());
  Image o = img;
  for (auto& v : o.pixels) v = float(mean + f * (v - mean));
  return clamp255(std::move(o));
}

Image adjust_saturation(const Image& img, double f) {
  if (img.channels == 1) return img;
  const Image g = rgb_to_gray(img);
  Image o = img;
  for (size_t i = 0; i < g.pixels.size(); ++i)
    for (int c = 0; c < 3; ++c) o.pixels[3 * i + c] = float(g.pixels[i] + f * (img.pixels[3 * i + c] - g.pixels[i]));
  return clamp255(std::move(o));
}

Image add_noise(const Image& img, double std, Generator& g) {
  Image o = img;
  for (auto& v : o.pixels) v = float(v + std * g.normal());
  return clamp255(std::move(o));
}

Image cutout(const Image& img, int cy, int cx, int side) {
  Image o = img;
  const int y0 = std::max(0, cy - side / 2), y1 = std::min(img.height, cy - side / 2 + side);
  const int x0 = std::max(0, cx - side / 2), x1 = std::min(img.width, cx - side / 2 + side);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x)
      for (int c = 0; c < img.channels; ++c) o.at(y, x, c) = 0.f;
  return o;
}

Image augment(const Image& img, const AugmentOptions& o, Generator& g) {
  Image x = img;
  // Each augmentation draws its coin (and parameters) whether or not it is enabled, so
  // switching one off does not change the random stream the others see.
  auto coin = [&](bool on, double p) { return g.uniform() < p && on; };
  if (coin(o.hflip, o.p_hflip)) x = hflip(x);
  {
    const bool on = coin(o.crop, o.p_crop);
    const double scale = o.crop_scale_min + (1.0 - o.crop_scale_min) * g.uniform();
    const double logr = std::log(o.crop_ratio_min) + (std::log(o.crop_ratio_max) - std::log(o.crop_ratio_min)) * g.uniform();
    const double u1 = g.uniform(), u2 = g.uniform();
    if (on) {
      const double area = scale * x.height * x.width, ratio = std::exp(logr);
      int w = std::clamp(int(std::lround(std::sqrt(area * ratio))), 1, x.width);
      int h = std::clamp(int(std::lround(std::sqrt(area / ratio))), 1, x.height);
      const int y0 = int(u1 * (x.height - h + 1)), x0 = int(u2 * (x.width - w + 1));
      x = crop_resize(x, std::min(y0, x.height - h), std::min(x0, x.width - w), h, w, x.height, x.width);
    }
  }
  {
    const bool on = coin(o.jitter, o.p_jitter);
    const double fb = 1 + o.brightness * (2 * g.uniform() - 1), fc = 1 + o.contrast * (2 * g.uniform() - 1),
                 fs = 1 + o.saturation * (2 * g.uniform() - 1);
    if (on) x = adjust_saturation(adjust_contrast(adjust_brightness(x, fb), fc), fs);
  }
  {
    const bool on = coin(o.rotate, o.p_rotate);
    const double deg = o.max_degrees * (2 * g.uniform() - 1);
    if (on) x = rotate(x, deg);
  }
  {
    const bool on = coin(o.noise, o.p_noise);
    Generator ng(g.next_u64());
    if (on) x = add_noise(x, o.noise_std, ng);
  }
  {
    const bool on = coin(o.cutout, o.p_cutout);
    const int cy = int(g.uniform() * x.height), cx = int(g.uniform() * x.width);
    if (on) x = cutout(x, cy, cx, std::max(1, int(std::lround(o.cutout_fraction * std::min(x.height, x.width)))));
  }
  return x;
}

double sample_beta(double alpha, Generator& g) {
  // Beta(a, a) = X / (X + Y), X, Y ~ Gamma(a): Marsaglia-Tsang (with the a < 1 boost)
  auto gamma = [&](double a) {
    double boost = 1.0;
    if (a < 1.0) {
      boost = std::pow(std::max(g.uniform(), 1e-300), 1.0 / a);
      a += 1.0;
    }
    const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double z = g.normal(), v = 1 + c * z;
      if (v <= 0) continue;
      v = v * v * v;
      const double u = g.uniform();
      if (std::log(std::max(u, 1e-300)) < 0.5 * z * z + d - d * v + d * std::log(v)) return boost * d * v;
    }
  };
  const double x = gamma(alpha), y = gamma(alpha);
  return x / (x + y);
}

}  // namespace adnn::data
