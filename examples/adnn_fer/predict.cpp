// adnn-fer predict: top classes for face crops, or for every face of a photo (RetinaFace
// detection, 5-point alignment with the ×1.3 margin, bicubic warp, the training
// preprocessing), and loading a trained checkpoint (fer.hpp).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "fer.hpp"
#include "graphed.hpp"

namespace adnn_fer {

using namespace adnn;
namespace fs = std::filesystem;

std::shared_ptr<AdnnFer> load_model(const std::string& path, Device device) {
  return nn::load_adnn_fer(path, device);
}

namespace {

// A small square grayscale image is taken for a ready face crop (FER2013's are 48×48).
bool looks_like_crop(const data::Image& img) {
  return img.channels == 1 && img.width == img.height && img.width <= 128;
}

// Probabilities (F, K) on the CPU for preprocessed crops (each S×S×C, pixels 0..255), under
// `tta` (flip: the mean of each crop's and its mirror's; tencrop: over ten views). On cuda the forward is replayed from
// a CUDA graph (one per batch size; `graphed` null: eager).
Tensor classify(AdnnFer& model, const std::vector<data::Image>& crops, Device dev, GraphedForward* graphed,
                nn::Tta tta) {
  std::vector<Tensor> xs;
  for (const auto& c : crops) xs.push_back(data::to_tensor(c));  // (S, S, C)
  Tensor x = stack(xs, 0);
  x = ((x / 255.0) - 0.5) / 0.5;  // as the loader
  NoGradGuard ng;
  if (graphed && dev.is_cuda()) return (*graphed)(x).to(kCPU);  // (F, K)
  return nn::predict_probabilities(model, x.to(dev), tta).to(kCPU);  // (F, K)
}

// NaN/Inf probabilities mean broken weights: refuse them, naming the checkpoint and image.
void require_finite(const Tensor& probs, const std::string& ckpt, const std::string& path) {
  for (double v : probs.to_vector())
    ADNN_CHECK(std::isfinite(v), "predict: checkpoint ", ckpt, " gives a non-finite probability (", v, ") for ",
               path, ": are its weights finite?");
}

std::vector<size_t> ranked(const std::vector<double>& pv) {
  std::vector<size_t> order(pv.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return pv[i] > pv[j]; });
  return order;
}

std::string class_name(size_t ci) {
  const auto& classes = data::fer2013_classes();
  return ci < classes.size() ? classes[ci] : std::to_string(ci);
}

}  // namespace

int cmd_predict(const Args& a) {
  const std::string ckpt = a.get("checkpoint");
  require_regular_file("predict: --checkpoint", ckpt);
  ADNN_CHECK(!a.positional.empty(), "predict: give one or more face crops or photos");
  for (const std::string& path : a.positional) require_regular_file("predict: image", path);
  const Device dev = pick_device(a);
  auto model = load_model(ckpt, dev);
  const FerConfig& c = model->config();
  const int64_t top = std::clamp<int64_t>(a.num("top", 3), 1, c.num_classes);
  const data::PreprocessOptions pre = preprocess_options(c);
  const fs::path out = a.get("out", ".");
  const nn::Tta tta = nn::parse_tta(a.get("tta", "none"), "predict --tta");
  if (tta != nn::Tta::none)
    std::printf("TTA: %s (each face's probabilities averaged %s)\n", nn::tta_name(tta),
                tta == nn::Tta::flip ? "with its mirror's" : "over ten views: five crops and their mirrors");
  std::unique_ptr<GraphedForward> graphed;  // cuda: a CUDA graph per batch size, unless --eager
  if (dev.is_cuda() && !a.has("eager"))
    graphed = std::make_unique<GraphedForward>(
        [&model, tta](const Tensor& x) { return nn::predict_probabilities(*model, x, tta); });
  std::shared_ptr<nn::RetinaFace> detector;  // loaded at the first photo
  const vision::DetectOptions dopt = detect_options(a);
  for (const std::string& path : a.positional) {
    const data::Image img = data::read_image(path);
    if (a.has("crop") || looks_like_crop(img)) {
      const Tensor probs = classify(*model, {data::preprocess(img, pre)}, dev, graphed.get(), tta);  // (1, K)
      require_finite(probs, ckpt, path);
      const std::vector<double> pv = probs.to_vector();
      const auto order = ranked(pv);
      std::printf("%s:", path.c_str());
      for (int64_t k = 0; k < top; ++k) std::printf("  %s %.3f", class_name(order[size_t(k)]).c_str(), pv[order[size_t(k)]]);
      std::printf("\n");
      continue;
    }
    if (!detector) detector = load_detector(a, dev);
    const data::Image rgb = img.channels == 3 ? img : data::gray_to_rgb(img);
    const std::vector<vision::Face> faces = vision::detect_faces(*detector, rgb, dopt, path);
    if (faces.empty()) {
      std::printf("%s: no face found (detector score >= %.2f)\n", path.c_str(), dopt.threshold);
      continue;
    }
    // aligned S×S crops from the photo's pixels, then the training preprocessing (gray, CLAHE)
    const Tensor crops = vision::align_faces(data::to_tensor(rgb), faces, pre.size);  // (F, S, S, 3)
    std::vector<data::Image> batch;
    for (int64_t f = 0; f < crops.size(0); ++f)
      batch.push_back(data::preprocess(data::from_tensor(clamp(crops.select(0, f), 0.0, 255.0)), pre));
    const Tensor probs = classify(*model, batch, dev, graphed.get(), tta);  // (F, K)
    require_finite(probs, ckpt, path);
    data::Image canvas = vision::draw_faces(rgb, faces);
    const int scale = std::max(1, std::max(rgb.width, rgb.height) / 400);
    for (size_t f = 0; f < faces.size(); ++f) {
      const std::vector<double> pv = probs.select(0, int64_t(f)).to_vector();
      const auto order = ranked(pv);
      const vision::Face& fc = faces[f];
      std::printf("%s: face %zu [%.0f %.0f %.0f %.0f] (%.2f):", path.c_str(), f, fc.x1, fc.y1, fc.x2, fc.y2, fc.score);
      for (int64_t k = 0; k < top; ++k) std::printf("  %s %.3f", class_name(order[size_t(k)]).c_str(), pv[order[size_t(k)]]);
      std::printf("\n");
      char label[64];
      std::snprintf(label, sizeof label, "%s %.0f%%", class_name(order[0]).c_str(), 100 * pv[order[0]]);
      const std::string s = label;
      const int lx = int(fc.x1), ly = std::max(0, int(fc.y1) - 7 * scale);
      for (int y = ly; y < ly + 7 * scale && y < canvas.height; ++y)  // a black band behind the label
        for (int x = std::max(0, lx); x < lx + int(s.size()) * 4 * scale + scale && x < canvas.width; ++x)
          for (int ch = 0; ch < 3; ++ch) canvas.at(y, x, ch) = 0;
      text(canvas, lx + scale, ly + scale, s, scale, 255.f);
    }
    fs::create_directories(out);
    const fs::path png = out / (fs::path(path).stem().string() + "_predicted.png");
    data::write_png(png.string(), canvas);
    std::printf("%s: %zu faces; wrote %s\n", path.c_str(), faces.size(), png.c_str());
  }
  return 0;
}

}  // namespace adnn_fer
