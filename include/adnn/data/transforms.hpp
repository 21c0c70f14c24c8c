#pragma once
// The paper's preprocessing (CLAHE on L of LAB, resize, channels) and augmentations, each
// seeded and individually switchable, with the paper's probabilities as defaults.
#include <adnn/data/image.hpp>

namespace adnn::data {

struct PreprocessOptions {
  int size = 48;       // output height = width
  int channels = 1;    // 1, or 3 (gray is replicated)
  bool clahe = true;   // CLAHE on L of LAB, clip 2.0, 8x8 tiles
  double clip = 2.0;
  int tiles = 8;
  Resample resample = Resample::bicubic;
};
Image preprocess(const Image& img, const PreprocessOptions& o);

struct AugmentOptions {
  bool hflip = true;
  double p_hflip = 0.5;
  bool crop = true;  // random resized crop back to the input size
  double p_crop = 0.8, crop_scale_min = 0.8, crop_ratio_min = 3.0 / 4.0, crop_ratio_max = 4.0 / 3.0;
  bool jitter = true;  // brightness, contrast (and saturation for RGB) by factors in [1-j, 1+j]
  double p_jitter = 0.5, brightness = 0.2, contrast = 0.2, saturation = 0.2;
  bool rotate = true;  // uniform angle in [-max, max] degrees, bilinear, zero fill
  double p_rotate = 0.3, max_degrees = 15.0;
  bool noise = true;  // additive Gaussian noise, std in pixel units
  double p_noise = 0.2, noise_std = 8.0;
  bool cutout = true;  // one zeroed square, side = fraction of the shorter image side
  double p_cutout = 0.3, cutout_fraction = 0.25;
  bool mixup = true;  // batch level: x = l x_i + (1-l) x_j, labels mixed the same way
  double p_mixup = 0.4, mixup_alpha = 0.2;
  static AugmentOptions none();
};

// Deterministic building blocks
Image hflip(const Image& img);
Image crop_resize(const Image& img, int y0, int x0, int h, int w, int out_h, int out_w);
Image rotate(const Image& img, double degrees);  // counter-clockwise about the centre, bilinear, zero fill
Image adjust_brightness(const Image& img, double factor);
Image adjust_contrast(const Image& img, double factor);    // blend with the mean gray level
Image adjust_saturation(const Image& img, double factor);  // blend with the gray image (RGB)
Image add_noise(const Image& img, double std, Generator& g);
Image cutout(const Image& img, int cy, int cx, int side);

// The per-sample chain (flip, crop, jitter, rotation, noise, cutout), each applied with its
// probability; every draw comes from `g`.
Image augment(const Image& img, const AugmentOptions& o, Generator& g);

// Beta(alpha, alpha) sample (for mixup).
double sample_beta(double alpha, Generator& g);

}  // namespace adnn::data
