// Class-folder and FER2013 CSV datasets.
#include <adnn/data/dataset.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace adnn::data {

const std::vector<std::string>& fer2013_classes() {
  static const std::vector<std::string> c{"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};
  return c;
}

std::vector<int64_t> Dataset::class_counts() const {
  std::vector<int64_t> c(size_t(num_classes()), 0);
  for (int64_t i = 0; i < size(); ++i) c.at(size_t(label(i)))++;
  return c;
}

FolderDataset::FolderDataset(const std::string& root, FolderOptions opts)
    : classes_(opts.classes.empty() ? fer2013_classes() : opts.classes), channels_(opts.channels) {
  std::error_code ec;
  ADNN_CHECK(fs::is_directory(root, ec), "FolderDataset: ", root, " is not a directory");
  std::vector<std::string> dirs;
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory()) dirs.push_back(e.path().filename().string());
  std::sort(dirs.begin(), dirs.end());
  ADNN_CHECK(!dirs.empty(), "FolderDataset: ", root, " has no class folders (expected ", root, "/<class>/*.jpg)");
  for (auto& d : dirs) {
    auto it = std::find(classes_.begin(), classes_.end(), d);
    if (it == classes_.end()) {
      std::string known;
      for (auto& c : classes_) known += (known.empty() ? "" : ", ") + c;
      ADNN_FAIL("FolderDataset: unknown class folder '", d, "' in ", root, " (known classes: ", known, ")");
    }
    const int64_t label = it - classes_.begin();
    std::vector<std::string> files;
    for (auto& e : fs::directory_iterator(fs::path(root) / d)) {
      if (!e.is_regular_file()) continue;
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
      if (std::find(opts.extensions.begin(), opts.extensions.end(), ext) != opts.extensions.end())
        files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    for (auto& f : files) items_.push_back({f, label});
  }
  ADNN_CHECK(!items_.empty(), "FolderDataset: no images under ", root);
}

Image FolderDataset::load(int64_t i) const { return read_image(items_.at(size_t(i)).first, channels_); }

Fer2013Csv::Fer2013Csv(const std::string& path, const std::string& usage) : path_(path) {
  std::ifstream f(path);
  ADNN_CHECK(f, "Fer2013Csv: cannot open ", path);
  std::string line;
  ADNN_CHECK(std::getline(f, line), "Fer2013Csv: ", path, " is empty");
  // header: emotion,pixels,Usage (Usage optional)
  ADNN_CHECK(line.rfind("emotion,pixels", 0) == 0, "Fer2013Csv: ", path,
             ": expected the header 'emotion,pixels,Usage', got '", line.substr(0, 60), "'");
  int64_t row = 1;
  while (std::getline(f, line)) {
    ++row;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const size_t c1 = line.find(','), c2 = line.find(',', c1 == std::string::npos ? c1 : c1 + 1);
    ADNN_CHECK(c1 != std::string::npos, "Fer2013Csv: ", path, ":", row, ": expected 'emotion,pixels,Usage'");
    const std::string u = c2 == std::string::npos ? "" : line.substr(c2 + 1);
    if (!usage.empty() && u != usage) continue;
    int64_t emotion = -1;
    try {
      emotion = std::stoll(line.substr(0, c1));
    } catch (...) {
    }
    ADNN_CHECK(emotion >= 0 && emotion < 7, "Fer2013Csv: ", path, ":", row, ": bad emotion '", line.substr(0, c1),
               "' (expected 0..6)");
    std::istringstream px(line.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1));
    int64_t n = 0;
    int v;
    const size_t start = pixels_.size();
    while (px >> v) {
      ADNN_CHECK(v >= 0 && v <= 255, "Fer2013Csv: ", path, ":", row, ": pixel value ", v, " outside 0..255");
      pixels_.push_back(uint8_t(v));
      ++n;
    }
    if (n != 48 * 48) {
      pixels_.resize(start);
      ADNN_FAIL("Fer2013Csv: ", path, ":", row, ": ", n, " pixels, expected 2304 (48x48)");
    }
    labels_.push_back(emotion);
    rows_.push_back(row);
  }
  ADNN_CHECK(!labels_.empty(), "Fer2013Csv: no rows with Usage '", usage, "' in ", path);
}

Image Fer2013Csv::load(int64_t i) const {
  Image img(48, 48, 1);
  const uint8_t* p = pixels_.data() + size_t(i) * 48 * 48;
  for (size_t k = 0; k < img.pixels.size(); ++k) img.pixels[k] = float(p[k]);
  return img;
}

std::string Fer2013Csv::name(int64_t i) const { return path_ + ":" + std::to_string(rows_.at(size_t(i))); }

}  // namespace adnn::data
