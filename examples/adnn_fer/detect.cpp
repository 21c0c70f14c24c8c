// adnn-fer detect: RetinaFace detections as JSON and an annotated PNG per image.
// adnn-fer preprocess: class folders of raw photos -> aligned face crops for training.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "fer.hpp"

namespace adnn_fer {

using namespace adnn;
namespace fs = std::filesystem;

std::shared_ptr<nn::RetinaFace> load_detector(const Args& a, Device device) {
  std::string path = a.get("detector");
  if (path.empty()) {
    const std::string rel = "/data/retinaface/mobilenet0.25.safetensors";
    for (const std::string& p : {std::string("../shared") + rel, std::string(ADNN_FER_SOURCE_DIR) + "/../shared" + rel})
      if (fs::is_regular_file(p)) {
        path = p;
        break;
      }
    ADNN_CHECK(!path.empty(), a.cmd, ": no --detector given and ../shared", rel, " is not there");
  }
  return nn::load_retinaface(path, device);
}

vision::DetectOptions detect_options(const Args& a) {
  vision::DetectOptions o;
  o.threshold = a.real("threshold", o.threshold);
  o.max_side = a.num("max-side", o.max_side);
  return o;
}

int cmd_detect(const Args& a) {
  ADNN_CHECK(!a.positional.empty(), "detect: give one or more images");
  const Device dev = pick_device(a);
  auto net = load_detector(a, dev);
  const vision::DetectOptions o = detect_options(a);
  const fs::path out = a.get("out", ".");
  fs::create_directories(out);
  int failed = 0;
  for (const std::string& path : a.positional) {
    try {
      const data::Image img = data::read_image(path, 3);
      const std::vector<vision::Face> faces = vision::detect_faces(*net, img, o, path);
      if (const int64_t reps = a.num("repeat", 0); reps > 0) {  // timing: median of reps detections
        std::vector<double> ms;
        for (int64_t r = 0; r < reps; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          vision::detect_faces(*net, img, o, path);
          ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(ms.begin(), ms.end());
        std::printf("%s: detection median %.1f ms over %lld runs (%dx%d)\n", path.c_str(), ms[ms.size() / 2],
                    (long long)reps, img.width, img.height);
      }
      const std::string stem = fs::path(path).stem().string();
      const fs::path json = out / (stem + "_faces.json"), png = out / (stem + "_faces.png");
      std::ofstream(json) << vision::faces_json(faces, img.width, img.height);
      data::write_png(png.string(), vision::draw_faces(img, faces));
      if (faces.empty())
        std::printf("%s: no face found (score >= %.2f); wrote %s\n", path.c_str(), o.threshold, json.c_str());
      else
        std::printf("%s: %zu faces; wrote %s and %s\n", path.c_str(), faces.size(), json.c_str(), png.c_str());
    } catch (const Error& e) {  // one unreadable image does not stop the others
      std::fprintf(stderr, "adnn-fer detect: %s\n", e.what());
      ++failed;
    }
  }
  return failed ? 1 : 0;
}

int cmd_preprocess(const Args& a) {
  ADNN_CHECK(a.has("data") && a.has("out"), "preprocess: --data RAW_DIR and --out DIR are required");
  int64_t size = a.num("size", 48), channels = a.num("channels", 1);
  if (a.has("checkpoint")) {  // the crops the classifier was trained on
    auto model = load_model(a.get("checkpoint"), kCPU);
    size = model->config().image_size;
    channels = model->config().in_chans;
  }
  ADNN_CHECK(size > 0 && (channels == 1 || channels == 3), "preprocess: bad --size ", size, " or --channels ",
             channels);
  const Device dev = pick_device(a);
  auto net = load_detector(a, dev);
  const vision::DetectOptions o = detect_options(a);
  const fs::path root = a.get("data"), out = a.get("out");
  ADNN_CHECK(fs::is_directory(root), "preprocess: ", root.string(), " is not a directory");
  std::vector<fs::path> classes;
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory()) classes.push_back(e.path());
  std::sort(classes.begin(), classes.end());
  ADNN_CHECK(!classes.empty(), "preprocess: ", root.string(), " has no class folders");
  std::vector<std::string> no_face, unreadable;
  int64_t written = 0;
  for (const fs::path& cls : classes) {
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(cls))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    fs::create_directories(out / cls.filename());
    for (const fs::path& f : files) {
      try {
        const data::Image img = data::read_image(f.string(), 3);
        std::vector<vision::Face> faces = vision::detect_faces(*net, img, o, f.string());
        if (faces.empty()) {
          no_face.push_back(f.string());
          continue;
        }
        // the most confident face; crops as FER2013's: aligned, gray (or RGB), no CLAHE (the
        // loader applies it, as to the original images)
        Tensor crop = vision::align_faces(data::to_tensor(img), {faces.front()}, size).select(0, 0);
        data::Image c = data::from_tensor(clamp(crop, 0.0, 255.0));
        if (channels == 1) c = data::rgb_to_gray(c);
        data::write_png((out / cls.filename() / (f.stem().string() + ".png")).string(), c);
        ++written;
      } catch (const Error& e) {
        unreadable.push_back(f.string() + ": " + e.what());
      }
    }
  }
  std::printf("preprocess: %lld aligned %lldx%lld crops in %s; %zu images with no face, %zu unreadable\n",
              (long long)written, (long long)size, (long long)size, out.c_str(), no_face.size(), unreadable.size());
  for (auto& p : no_face) std::printf("  no face: %s\n", p.c_str());
  for (auto& p : unreadable) std::printf("  unreadable: %s\n", p.c_str());
  std::ofstream list(out / "no_face.txt");
  for (auto& p : no_face) list << p << "\n";
  return 0;
}

}  // namespace adnn_fer
