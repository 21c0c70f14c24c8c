// adnn-fer explain: Grad-CAM, Grad-CAM++, expected gradients (SHAP) and integrated
// gradients for face crops or every face of photos (one PNG per face and method, and a grid),
// and --summary: the mean Grad-CAM per class over a data set and the share of it falling on
// the eyes/brows, nose and mouth (docs/explain.md). The methods are in the library
// (include/adnn/explain/).
#include <adnn/explain/explain.hpp>
#include <adnn/explain/render.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "fer.hpp"

namespace adnn_fer {

using namespace adnn;
namespace fs = std::filesystem;

namespace {

struct FaceInput {
  std::string label;            // "path" or "path face F"
  std::string stem;             // output file stem
  data::Image display;          // S×S (gray or RGB) 0..255: the face as given / aligned
  Tensor x;                     // (1, S, S, C) normalised, on the CPU
  explain::Landmarks landmarks;  // in the S×S crop
};

// Thin white lines where the facial region changes, on a picture enlarged `zoom` times.
void outline_regions(data::Image& pic, const std::vector<explain::Region>& mask, int64_t S, int zoom, int top) {
  auto region = [&](int64_t y, int64_t x) { return mask[size_t(y * S + x)]; };
  for (int y = 0; y < int(S) * zoom; ++y)
    for (int x = 0; x < int(S) * zoom; ++x) {
      const int64_t sy = y / zoom, sx = x / zoom;
      const bool edge = (x % zoom == 0 && sx > 0 && region(sy, sx) != region(sy, sx - 1)) ||
                        (y % zoom == 0 && sy > 0 && region(sy, sx) != region(sy - 1, sx));
      if (edge)
        for (int k = 0; k < 3; ++k) pic.at(top + y, x, k) = 255.f;
    }
}

std::string class_name(int64_t ci) {
  const auto& classes = data::fer2013_classes();
  return ci >= 0 && size_t(ci) < classes.size() ? classes[size_t(ci)] : std::to_string(ci);
}

// The training preprocessing, as a (1, S, S, C) tensor normalised as the loader does.
Tensor model_input(const data::Image& img, const data::PreprocessOptions& pre) {
  Tensor x = data::to_tensor(data::preprocess(img, pre)).unsqueeze(0);  // (1, S, S, C)
  return ((x / 255.0) - 0.5) / 0.5;
}

bool looks_like_crop(const data::Image& img) {
  return img.channels == 1 && img.width == img.height && img.width <= 128;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string w; std::getline(ss, w, ',');)
    if (!w.empty()) out.push_back(w);
  return out;
}

std::vector<std::string> methods_of(const Args& a) {
  const std::string m = a.get("method", "gradcam");
  if (m == "all") return {"gradcam", "gradcam++", "shap", "ig"};
  return {m};
}

std::string file_tag(const std::string& method) { return method == "gradcam++" ? "gradcampp" : method; }

// A map in [0, 1] for the picture: Grad-CAM's own; for attributions the positive part
// (evidence for the class), divided by its maximum.
std::vector<double> positive_normalised(const Tensor& pixel) {
  std::vector<double> v = pixel.to_vector();
  double hi = 0;
  for (double& x : v) {
    x = std::max(x, 0.0);
    hi = std::max(hi, x);
  }
  if (hi > 0)
    for (double& x : v) x /= hi;
  return v;
}

double median_ms(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  return ms.empty() ? 0.0 : ms[ms.size() / 2];
}

struct Explainer {
  AdnnFer& model;
  Device dev;
  std::vector<std::string> layers;
  explain::ShapOptions shap;
  int64_t ig_steps = 64;
  Tensor background;  // (B, S, S, C) on dev, for shap

  // The map (S·S values in [0, 1]), the probabilities (K) and the explained class.
  struct Out {
    std::vector<double> map;
    std::vector<double> probs;
    int64_t cls = 0;
    double f_x = 0, f_ref = 0, attr_sum = 0;  // attributions: completeness check
  };
  Out run(const std::string& method, const Tensor& x, const std::vector<int64_t>& cls) {
    Out o;
    const Tensor xd = x.to(dev);
    if (method == "gradcam" || method == "gradcam++") {
      explain::CamOptions co;
      co.method = method == "gradcam" ? explain::CamMethod::gradcam : explain::CamMethod::gradcam_pp;
      co.layers = layers;
      co.classes = cls;
      explain::CamResult r = explain::grad_cam(model, xd, co);
      o.map = r.cam.to_vector();
      o.probs = r.probs.to_vector();
      o.cls = r.classes[0];
      return o;
    }
    explain::Attribution r;
    if (method == "shap") {
      r = explain::expected_gradients(model, xd, background, cls, shap);
    } else {
      const Tensor black = full({1, x.size(1), x.size(2), x.size(3)}, -1.0).to(dev);  // pixel 0 after normalisation
      r = explain::integrated_gradients(model, xd, black, cls, ig_steps);
    }
    o.map = positive_normalised(r.pixel);
    o.probs = r.probs.to_vector();
    o.cls = r.classes[0];
    o.f_x = r.f_x[0];
    o.f_ref = r.f_ref[0];
    o.attr_sum = sum(r.pixel).item<double>();
    return o;
  }
};

// FER2013-style images of a split, preprocessed for the model, with a fixed stratified slice.
std::shared_ptr<const data::Dataset> split_dataset(const Args& a, const std::string& split, int64_t limit,
                                                   uint64_t seed) {
  const std::string dir = resolve_data_dir(a);
  auto ds = std::make_shared<data::FolderDataset>(dir + "/" + split);
  ADNN_CHECK(ds->size() > 0, "explain: no images in ", dir, "/", split);
  return stratified_slice(ds, limit, seed);
}

Tensor load_batch(const data::Dataset& ds, const std::vector<int64_t>& idx, const data::PreprocessOptions& pre) {
  std::vector<Tensor> xs;
  for (int64_t i : idx) xs.push_back(model_input(ds.load(i), pre));
  return cat(xs, 0);  // (B, S, S, C)
}

int explain_summary(const Args& a, AdnnFer& model, Device dev, const std::vector<std::string>& layers,
                    const fs::path& out) {
  const std::string method = a.get("method", "gradcam");
  if (method != "gradcam" && method != "gradcam++")
    throw UsageError("explain --summary: --method must be gradcam or gradcam++, got '" + method + "'");
  const FerConfig& c = model.config();
  const data::PreprocessOptions pre = preprocess_options(c);
  const std::string split = a.get("split", "val");
  auto ds = split_dataset(a, split, a.num("limit", 0), 0);
  const int64_t n = ds->size(), K = c.num_classes, S = c.image_size, batch = 32;
  std::printf("explain --summary: %s of %lld %s images (class = the true label), layers", method.c_str(),
              (long long)n, split.c_str());
  for (auto& l : layers) std::printf(" %s", l.c_str());
  std::printf("\n");
  const std::vector<explain::Region> mask = explain::region_mask(explain::canonical_landmarks(S), S, S);
  const int zoom = int(a.num("zoom", 4));
  std::vector<std::vector<double>> cam_sum(size_t(K), std::vector<double>(size_t(S * S), 0.0));
  std::vector<std::vector<double>> face_sum(size_t(K), std::vector<double>(size_t(S * S), 0.0));
  std::vector<std::array<double, explain::kRegions>> frac_sum(static_cast<size_t>(K));
  std::vector<int64_t> count(size_t(K), 0), correct(size_t(K), 0);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i0 = 0; i0 < n; i0 += batch) {
    std::vector<int64_t> idx(size_t(std::min(batch, n - i0)));
    std::iota(idx.begin(), idx.end(), i0);
    std::vector<int64_t> labels;
    for (int64_t i : idx) labels.push_back(ds->label(i));
    const Tensor x = load_batch(*ds, idx, pre);
    explain::CamOptions co;
    co.method = method == "gradcam" ? explain::CamMethod::gradcam : explain::CamMethod::gradcam_pp;
    co.layers = layers;
    co.classes = labels;
    const explain::CamResult r = explain::grad_cam(model, x.to(dev), co);
    const std::vector<double> cam = r.cam.to_vector(), probs = r.probs.to_vector(), xs = x.to_vector();
    for (size_t j = 0; j < idx.size(); ++j) {
      const int64_t y = labels[j];
      ++count[size_t(y)];
      const double* pj = probs.data() + j * size_t(K);
      correct[size_t(y)] += int64_t(std::max_element(pj, pj + K) - pj) == y;
      std::vector<double> m(cam.begin() + long(j * size_t(S * S)), cam.begin() + long((j + 1) * size_t(S * S)));
      for (size_t p = 0; p < m.size(); ++p) {
        cam_sum[size_t(y)][p] += m[p];
        // the model's input (CLAHE'd, channel 0) back to 0..255 for the mean face
        face_sum[size_t(y)][p] += (xs[(j * size_t(S * S) + p) * size_t(c.in_chans)] * 0.5 + 0.5) * 255.0;
      }
      const auto f = explain::region_fractions(m, mask);
      for (int k = 0; k < explain::kRegions; ++k) frac_sum[size_t(y)][size_t(k)] += f[size_t(k)];
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // the table: mean share of each image's map per region, by class; the regions' share of the area
  std::array<double, explain::kRegions> area{};
  for (auto r : mask) area[size_t(int(r))] += 1.0 / double(mask.size());
  std::ostringstream md;
  md << "| class | images | accuracy | eyes/brows | nose | mouth | other |\n|---|---|---|---|---|---|---|\n";
  std::vector<data::Image> tiles;
  for (int64_t k = 0; k < K; ++k) {
    const double cnt = double(std::max<int64_t>(1, count[size_t(k)]));
    char row[256];
    std::snprintf(row, sizeof row, "| %s | %lld | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% |\n", class_name(k).c_str(),
                  (long long)count[size_t(k)], 100.0 * double(correct[size_t(k)]) / cnt,
                  100 * frac_sum[size_t(k)][0] / cnt, 100 * frac_sum[size_t(k)][1] / cnt,
                  100 * frac_sum[size_t(k)][2] / cnt, 100 * frac_sum[size_t(k)][3] / cnt);
    md << row;
    if (count[size_t(k)] == 0) continue;
    std::vector<double> m = cam_sum[size_t(k)];
    for (double& v : m) v /= cnt;
    explain::normalize_min_max(m);
    data::Image face(static_cast<int>(S), static_cast<int>(S), 1);
    for (size_t p = 0; p < face.pixels.size(); ++p) face.pixels[p] = float(face_sum[size_t(k)][p] / cnt);
    data::Image tile = explain::captioned(explain::overlay_heatmap(face, m, S, S, zoom),
                                          {class_name(k), "N " + std::to_string(count[size_t(k)])}, 2);
    outline_regions(tile, mask, S, zoom, tile.height - int(S) * zoom);
    tiles.push_back(std::move(tile));
  }
  char arow[256];
  std::snprintf(arow, sizeof arow, "| (share of the area) | | | %.1f%% | %.1f%% | %.1f%% | %.1f%% |\n", 100 * area[0],
                100 * area[1], 100 * area[2], 100 * area[3]);
  md << arow;
  fs::create_directories(out);
  const std::string stem = (out / ("explain_summary_" + split + "_" + file_tag(method))).string();
  const std::string table = md.str();
  io::write_file_atomic(stem + ".md", std::vector<uint8_t>(table.begin(), table.end()));
  data::write_png(stem + ".png", explain::grid(tiles, int(std::min<size_t>(tiles.size(), 4)), 6));
  std::printf("%s", table.c_str());
  std::printf("%lld images in %.1f s (%.1f ms per image); wrote %s.md and %s.png\n", (long long)n, secs,
              1000.0 * secs / double(std::max<int64_t>(1, n)), stem.c_str(), stem.c_str());
  return 0;
}

}  // namespace

int cmd_explain(const Args& a) {
  const std::string ckpt = a.get("checkpoint");
  require_regular_file("explain: --checkpoint", ckpt);
  if (!a.has("out")) throw UsageError("explain: --out DIR is required");
  const bool summary = a.has("summary");
  if (summary && !a.positional.empty())
    throw UsageError("explain --summary takes --data/--split/--limit, not images");
  if (summary && a.has("class")) throw UsageError("explain --summary explains each image's true class: drop --class");
  if (!summary && a.positional.empty()) throw UsageError("explain: give one or more face crops or photos (or --summary)");
  for (const std::string& path : a.positional) require_regular_file("explain: image", path);
  const Device dev = pick_device(a);
  auto model = load_model(ckpt, dev);
  const FerConfig& c = model->config();
  std::vector<std::string> layers = a.has("layers") ? split_list(a.get("layers")) : explain::default_cam_layers(*model);
  for (const std::string& l : layers) {
    try {
      model->get_submodule(l);
    } catch (const Error& e) {
      throw UsageError(std::string("explain --layers: ") + e.what());
    }
  }
  std::vector<int64_t> cls;
  if (a.has("class")) {
    const int64_t k = a.num("class", 0);
    if (k >= c.num_classes)
      throw UsageError("explain --class: " + std::to_string(k) + " is out of range for a model with " +
                       std::to_string(c.num_classes) + " classes (0.." + std::to_string(c.num_classes - 1) + ")");
    cls = {k};
  }
  const fs::path out = a.get("out");
  if (summary) return explain_summary(a, *model, dev, layers, out);

  const std::vector<std::string> methods = methods_of(a);
  const data::PreprocessOptions pre = preprocess_options(c);
  const int64_t S = c.image_size;
  Explainer ex{*model, dev, layers, {}, 64, {}};
  ex.shap.samples = a.num("samples", 64);
  ex.shap.seed = uint64_t(a.num("seed", 0));
  ex.ig_steps = a.num("steps", 64);
  if (std::find(methods.begin(), methods.end(), "shap") != methods.end()) {
    // the background: a class-stratified, seeded draw of training images
    const int64_t nb = a.num("background", 32);
    auto bg = split_dataset(a, "train", nb, uint64_t(a.num("seed", 0)));
    std::vector<int64_t> idx(static_cast<size_t>(bg->size()));
    std::iota(idx.begin(), idx.end(), 0);
    ex.background = load_batch(*bg, idx, pre).to(dev);
    ex.shap.background_logits = explain::batch_logits(*model, ex.background);  // once for every face
    std::printf("shap: %lld background images from the training split, %lld samples per image\n",
                (long long)bg->size(), (long long)ex.shap.samples);
  }

  // the faces: crops as they are, photos through detection and alignment
  std::vector<FaceInput> faces;
  std::shared_ptr<nn::RetinaFace> detector;
  const vision::DetectOptions dopt = detect_options(a);
  for (const std::string& path : a.positional) {
    const data::Image img = data::read_image(path);
    const std::string stem = fs::path(path).stem().string();
    if (a.has("crop") || looks_like_crop(img)) {
      FaceInput f;
      f.label = path;
      f.stem = stem;
      f.display = img.width == S && img.height == S ? img : data::resize(img, int(S), int(S));
      f.x = model_input(img, pre);
      f.landmarks = explain::canonical_landmarks(S);
      faces.push_back(std::move(f));
      continue;
    }
    if (!detector) detector = load_detector(a, dev);
    const data::Image rgb = img.channels == 3 ? img : data::gray_to_rgb(img);
    const std::vector<vision::Face> found = vision::detect_faces(*detector, rgb, dopt, path);
    if (found.empty()) {
      std::printf("%s: no face found (detector score >= %.2f)\n", path.c_str(), dopt.threshold);
      continue;
    }
    const Tensor crops = vision::align_faces(data::to_tensor(rgb), found, S);  // (F, S, S, 3)
    const std::array<double, 10> tmpl = vision::face_template(S);
    for (size_t fi = 0; fi < found.size(); ++fi) {
      FaceInput f;
      f.label = path + " face " + std::to_string(fi);
      f.stem = stem + "_face" + std::to_string(fi);
      f.display = data::from_tensor(clamp(crops.select(0, int64_t(fi)), 0.0, 255.0));
      f.x = model_input(f.display, pre);
      // the detector's landmarks carried into the crop by the alignment's similarity
      double src[10];
      for (int i = 0; i < 10; ++i) src[i] = found[fi].landmarks[size_t(i)];
      const vision::Affine m = vision::similarity_transform(src, tmpl.data(), 5);
      for (int i = 0; i < 5; ++i) {
        f.landmarks[size_t(2 * i)] = m[0] * src[2 * i] + m[1] * src[2 * i + 1] + m[2];
        f.landmarks[size_t(2 * i + 1)] = m[3] * src[2 * i] + m[4] * src[2 * i + 1] + m[5];
      }
      faces.push_back(std::move(f));
    }
  }

  fs::create_directories(out);
  const int64_t repeat = a.num("repeat", 1);
  const int zoom = int(a.num("zoom", 4));
  std::vector<data::Image> tiles;
  for (const FaceInput& f : faces) {
    const std::vector<explain::Region> mask = explain::region_mask(f.landmarks, S, S);
    for (const std::string& method : methods) {
      Explainer::Out o;
      std::vector<double> ms;
      for (int64_t r = 0; r < repeat; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        o = ex.run(method, f.x, cls);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      for (double p : o.probs)
        ADNN_CHECK(std::isfinite(p), "explain: checkpoint ", ckpt, " gives a non-finite probability for ", f.label);
      const int64_t pred = int64_t(std::max_element(o.probs.begin(), o.probs.end()) - o.probs.begin());
      char l1[96], l2[96];
      std::snprintf(l1, sizeof l1, "%s %.0f%%", class_name(pred).c_str(), 100 * o.probs[size_t(pred)]);
      std::snprintf(l2, sizeof l2, "%s %s", method.c_str(), o.cls == pred ? "" : ("for " + class_name(o.cls)).c_str());
      const data::Image pic = explain::captioned(explain::overlay_heatmap(f.display, o.map, S, S, zoom), {l1, l2},
                                                 std::max(1, zoom / 2));
      const fs::path png = out / (f.stem + "_" + file_tag(method) + ".png");
      data::write_png(png.string(), pic);
      tiles.push_back(pic);
      const auto fr = explain::region_fractions(o.map, mask);
      std::printf("%s: %s %.3f; %s of %s: eyes/brows %.0f%% nose %.0f%% mouth %.0f%% other %.0f%%", f.label.c_str(),
                  class_name(pred).c_str(), o.probs[size_t(pred)], method.c_str(), class_name(o.cls).c_str(),
                  100 * fr[0], 100 * fr[1], 100 * fr[2], 100 * fr[3]);
      if (method == "shap" || method == "ig")
        std::printf("; sum of attributions %.4f, f(x) - f(ref) %.4f", o.attr_sum, o.f_x - o.f_ref);
      std::printf("; %.1f ms%s; wrote %s\n", median_ms(ms), repeat > 1 ? " (median)" : "", png.c_str());
    }
  }
  if (tiles.size() > 1) {
    const int cols = int(methods.size() > 1 ? methods.size() : std::min<size_t>(tiles.size(), 8));
    const fs::path g = out / "explain_grid.png";
    data::write_png(g.string(), explain::grid(tiles, cols, 4));
    std::printf("wrote %s (%zu pictures)\n", g.c_str(), tiles.size());
  }
  return 0;
}

}  // namespace adnn_fer
