// Datasets: tensors, numeric CSV, class folders and the FER2013 CSV.
#include <adnn/data/dataset.hpp>

#include <adnn/core/parse.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <string_view>

namespace fs = std::filesystem;

namespace adnn::data {

const std::vector<std::string>& fer2013_classes() {
  static const std::vector<std::string> c{"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};
  return c;
}

// ---------------------------------------------------------------- generic datasets
TensorDataset::TensorDataset(Tensor inputs, Tensor targets) : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  ADNN_CHECK(inputs_.defined() && inputs_.dim() >= 1, "TensorDataset: inputs must be a tensor (N, ...), got ",
             inputs_.defined() ? inputs_.desc() : std::string("an undefined tensor"));
  ADNN_CHECK(!targets_.defined() || (targets_.dim() >= 1 && targets_.size(0) == inputs_.size(0)),
             "TensorDataset: inputs ", inputs_.desc(), " and targets ", targets_.defined() ? targets_.desc() : "",
             " differ in their first dimension");
}

Example TensorDataset::get(int64_t i) const {
  ADNN_CHECK(i >= 0 && i < size(), "TensorDataset: index ", i, " out of range (size ", size(), ")");
  return {inputs_.select(0, i), targets_.defined() ? targets_.select(0, i) : Tensor()};
}

CsvDataset::CsvDataset(const std::string& path, CsvOptions opts) {
  std::ifstream f(path);
  ADNN_CHECK(f, "CsvDataset: cannot open ", path);
  parse(f, path, opts);
}

CsvDataset::CsvDataset(std::istream& in, const std::string& name, CsvOptions opts) { parse(in, name, opts); }

namespace {
std::vector<std::string> split_cells(const std::string& line, char delim) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t p = line.find(delim, start);
    std::string cell = line.substr(start, p == std::string::npos ? std::string::npos : p - start);
    const auto b = cell.find_first_not_of(" \t\r"), e = cell.find_last_not_of(" \t\r");
    out.push_back(b == std::string::npos ? std::string() : cell.substr(b, e - b + 1));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}
}  // namespace

void CsvDataset::parse(std::istream& in, const std::string& name, const CsvOptions& opts) {
  std::string line;
  int64_t lineno = 0;
  std::vector<std::string> header;
  while (header.empty() && std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") != std::string::npos) header = split_cells(line, opts.delimiter);
  }
  ADNN_CHECK(header.size() >= 2, "CsvDataset: ", name, " needs a header with at least two columns (features and ",
             "the target)");
  size_t t = header.size() - 1;
  if (!opts.target.empty()) {
    auto it = std::find(header.begin(), header.end(), opts.target);
    ADNN_CHECK(it != header.end(), "CsvDataset: ", name, " has no column '", opts.target, "'");
    t = size_t(it - header.begin());
  }
  for (size_t c = 0; c < header.size(); ++c)
    if (c != t) features_.push_back(header[c]);
  std::vector<float> x;
  std::vector<float> yf;
  std::vector<int64_t> yi;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto cells = split_cells(line, opts.delimiter);
    ADNN_CHECK(cells.size() == header.size(), "CsvDataset: ", name, ":", lineno, ": ", cells.size(),
               " cells, the header has ", header.size());
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string what = name + ":" + std::to_string(lineno) + " column '" + header[c] + "'";
      if (c == t && opts.integer_target) yi.push_back(parse_int64(cells[c], what));
      else if (c == t) yf.push_back(float(parse_double(cells[c], what)));
      else x.push_back(float(parse_double(cells[c], what)));
    }
  }
  const int64_t n = int64_t(opts.integer_target ? yi.size() : yf.size()), F = int64_t(features_.size());
  ADNN_CHECK(n > 0, "CsvDataset: ", name, " has no rows");
  inputs_ = from_vector(x, {n, F});                                              // (N, F) f32
  targets_ = opts.integer_target ? from_vector(yi, {n}) : from_vector(yf, {n});  // (N)
}

Example CsvDataset::get(int64_t i) const {
  ADNN_CHECK(i >= 0 && i < size(), "CsvDataset: index ", i, " out of range (size ", size(), ")");
  return {inputs_.select(0, i), targets_.select(0, i)};
}

Example Dataset::get(int64_t i) const {
  ADNN_CHECK(i >= 0 && i < size(), "Dataset: index ", i, " out of range (size ", size(), ")");
  Image im = load(i);
  std::vector<float> px(im.pixels.size());
  for (size_t p = 0; p < px.size(); ++p) px[p] = im.pixels[p] / 255.f;
  return {from_vector(px, {im.height, im.width, im.channels}),  // (H, W, C) in [0, 1]
          from_vector(std::vector<int64_t>{label(i)}, {})};    // () i64
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

namespace {
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t b = 0;
  for (;;) {
    const size_t e = s.find(sep, b);
    out.push_back(s.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
    if (e == std::string_view::npos) return out;
    b = e + 1;
  }
}
const std::vector<std::string>& fer2013_usages() {
  static const std::vector<std::string> u{"Training", "PublicTest", "PrivateTest"};
  return u;
}
}  // namespace

Fer2013Csv::Fer2013Csv(const std::string& path, const std::string& usage) : path_(path) {
  std::ifstream f(path);
  ADNN_CHECK(f && !fs::is_directory(path), "Fer2013Csv: cannot open ", path, " as a file");
  parse(f, usage);
}

Fer2013Csv::Fer2013Csv(std::istream& in, const std::string& name, const std::string& usage) : path_(name) {
  parse(in, usage);
}

void Fer2013Csv::parse(std::istream& f, const std::string& usage) {
  const std::string& path = path_;
  const auto& usages = fer2013_usages();
  ADNN_CHECK(usage.empty() || std::find(usages.begin(), usages.end(), usage) != usages.end(), "Fer2013Csv: usage '",
             usage, "' is not one of Training, PublicTest, PrivateTest (or empty for all rows)");
  std::string line;
  ADNN_CHECK(std::getline(f, line), "Fer2013Csv: ", path, " is empty");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  // header: emotion,pixels,Usage (Usage optional); every row has as many columns
  const size_t columns = split(line, ',').size();
  ADNN_CHECK(line == "emotion,pixels,Usage" || line == "emotion,pixels", "Fer2013Csv: ", path,
             ": expected the header 'emotion,pixels,Usage' or 'emotion,pixels', got '", line.substr(0, 60), "'");
  ADNN_CHECK(usage.empty() || columns == 3, "Fer2013Csv: ", path, " has no Usage column, so cannot select '", usage,
             "' rows");
  int64_t row = 1;
  std::vector<uint8_t> px(48 * 48);
  while (std::getline(f, line)) {
    ++row;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(row);
    const auto fields = split(line, ',');
    ADNN_CHECK(fields.size() == columns, "Fer2013Csv: ", where, ": ", fields.size(), " columns, expected ", columns,
               " (", columns == 3 ? "emotion,pixels,Usage" : "emotion,pixels", ")");
    // every row is checked, also those of other usages: a damaged file is an error, never a
    // silently smaller split
    const int64_t emotion = parse_int64(fields[0], "Fer2013Csv: " + where + ": emotion", 0, 6);
    if (columns == 3)
      ADNN_CHECK(std::find(usages.begin(), usages.end(), fields[2]) != usages.end(), "Fer2013Csv: ", where,
                 ": Usage '", std::string(fields[2].substr(0, 40)),
                 "' is not one of Training, PublicTest, PrivateTest");
    // pixels: 2,304 integers in 0..255 separated by single spaces
    const std::string_view pix = fields[1];
    size_t n = 0, b = 0;
    while (b <= pix.size()) {
      size_t e = pix.find(' ', b);
      if (e == std::string_view::npos) e = pix.size();
      const std::string_view tok = pix.substr(b, e - b);
      int v = -1;
      const auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
      if (ec != std::errc() || end != tok.data() + tok.size() || tok.empty() || v < 0 || v > 255)
        parse_int64(tok, "Fer2013Csv: " + where + ": pixel " + std::to_string(n + 1), 0, 255);  // throws
      if (n < px.size()) px[n] = uint8_t(v);
      ++n;
      b = e + 1;
    }
    ADNN_CHECK(n == 48 * 48, "Fer2013Csv: ", where, ": ", n, " pixels, expected 2304 (48x48)");
    if (!usage.empty() && fields[2] != usage) continue;
    pixels_.insert(pixels_.end(), px.begin(), px.end());
    labels_.push_back(emotion);
    rows_.push_back(row);
  }
  ADNN_CHECK(f.eof(), "Fer2013Csv: reading ", path, " failed after line ", row);
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
