#pragma once
// Datasets. ExampleDataset is the generic interface the DataLoader batches (torch's
// map-style torch.utils.data.Dataset: a size and the i-th (input, target) example):
// TensorDataset (tensors sliced along dim 0), CsvDataset (numeric CSV columns) and the image
// datasets, which are ExampleDatasets too. The image datasets: class folders
// (root/<class>/*.jpg) and the original FER2013 CSV (emotion, pixels, Usage). Both use the
// FER2013 label map by default, so folder names and CSV indices agree.
#include <adnn/data/image.hpp>

#include <adnn/core/tensor.hpp>

#include <istream>
#include <memory>
#include <string>
#include <vector>

namespace adnn::data {

// FER2013's classes in their standard order: 0 angry … 6 neutral.
const std::vector<std::string>& fer2013_classes();

// One example: torch's (input, target) pair. Every example of a dataset has the same shapes
// (the loader stacks them); target may be undefined (inputs only).
struct Example {
  Tensor input;
  Tensor target;
};

// torch.utils.data.Dataset (map-style): the DataLoader's generic input.
class ExampleDataset {
 public:
  virtual ~ExampleDataset() = default;
  virtual int64_t size() const = 0;
  // Example i, 0 <= i < size(); an adnn::Error naming the dataset otherwise.
  virtual Example get(int64_t i) const = 0;
};

// torch.utils.data.TensorDataset: example i is (inputs[i], targets[i]). inputs (N, ...) and
// targets (N, ...) or undefined; any dtype and device.
class TensorDataset : public ExampleDataset {
 public:
  explicit TensorDataset(Tensor inputs, Tensor targets = {});
  int64_t size() const override { return inputs_.size(0); }
  Example get(int64_t i) const override;
  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_, targets_;
};

// A CSV of numbers with a header row: every column but the target is an input feature
// (f32 (F)); the target column (default: the last) is an i64 class index, or f32 when
// integer_target is off. Empty lines are skipped; a row with the wrong number of cells or a
// cell that is not a number is an adnn::Error naming file:line and the column.
struct CsvOptions {
  std::string target;  // the target column's name; "" = the last column
  bool integer_target = true;
  char delimiter = ',';
};
class CsvDataset : public ExampleDataset {
 public:
  explicit CsvDataset(const std::string& path, CsvOptions opts = {});
  CsvDataset(std::istream& in, const std::string& name, CsvOptions opts = {});  // `name` in errors
  int64_t size() const override { return inputs_.size(0); }
  Example get(int64_t i) const override;
  const std::vector<std::string>& feature_names() const { return features_; }
  const Tensor& inputs() const { return inputs_; }    // (N, F) f32
  const Tensor& targets() const { return targets_; }  // (N) i64 or f32

 private:
  void parse(std::istream& in, const std::string& name, const CsvOptions& opts);
  std::vector<std::string> features_;
  Tensor inputs_, targets_;
};

// Labelled images. As an ExampleDataset, example i is the decoded image as (H, W, C) f32 in
// [0, 1] with its label as an i64 scalar (the DataLoader's image constructor instead
// preprocesses, augments and normalises).
class Dataset : public ExampleDataset {
 public:
  virtual int64_t label(int64_t i) const = 0;
  Example get(int64_t i) const override;
  // Decodes sample i; a bad file raises adnn::Error naming it.
  virtual Image load(int64_t i) const = 0;
  virtual std::string name(int64_t i) const = 0;  // path or "file.csv:row"
  virtual const std::vector<std::string>& classes() const = 0;
  int64_t num_classes() const { return int64_t(classes().size()); }
  std::vector<int64_t> class_counts() const;
};

struct FolderOptions {
  // Class names in label order; folders must be among them (an unknown folder is an
  // error). Empty: the FER2013 map.
  std::vector<std::string> classes;
  std::vector<std::string> extensions{".jpg", ".jpeg", ".png", ".bmp"};
  int channels = 0;  // as read_image
};

class FolderDataset : public Dataset {
 public:
  explicit FolderDataset(const std::string& root, FolderOptions opts = {});
  int64_t size() const override { return int64_t(items_.size()); }
  int64_t label(int64_t i) const override { return items_.at(size_t(i)).second; }
  Image load(int64_t i) const override;
  std::string name(int64_t i) const override { return items_.at(size_t(i)).first; }
  const std::vector<std::string>& classes() const override { return classes_; }

 private:
  std::vector<std::pair<std::string, int64_t>> items_;  // sorted by class then file name
  std::vector<std::string> classes_;
  int channels_;
};

// The original fer2013.csv. usage: "Training", "PublicTest" or "PrivateTest" (empty: all).
// The header must be "emotion,pixels,Usage" (or "emotion,pixels", then usage must be
// empty); every row, whatever its usage, must have the header's columns, an emotion 0..6,
// exactly 2,304 pixels 0..255 separated by single spaces, and a Usage among the three
// names: anything else is an adnn::Error naming file:line and the field (no row is skipped).
class Fer2013Csv : public Dataset {
 public:
  Fer2013Csv(const std::string& path, const std::string& usage);
  // The same from a stream; `name` stands for the file in errors and names.
  Fer2013Csv(std::istream& in, const std::string& name, const std::string& usage);
  int64_t size() const override { return int64_t(labels_.size()); }
  int64_t label(int64_t i) const override { return labels_.at(size_t(i)); }
  Image load(int64_t i) const override;
  std::string name(int64_t i) const override;
  const std::vector<std::string>& classes() const override { return fer2013_classes(); }

 private:
  void parse(std::istream& in, const std::string& usage);
  std::string path_;
  std::vector<int64_t> labels_, rows_;
  std::vector<uint8_t> pixels_;  // size() * 48 * 48
};

}  // namespace adnn::data
