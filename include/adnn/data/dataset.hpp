#pragma once
// Datasets of labelled images: class folders (root/<class>/*.jpg) and the original
// FER2013 CSV (emotion, pixels, Usage). Both use the FER2013 label map by default, so
// folder names and CSV indices agree.
#include <adnn/data/image.hpp>

#include <istream>
#include <memory>
#include <string>
#include <vector>

namespace adnn::data {

// FER2013's classes in their standard order: 0 angry … 6 neutral.
const std::vector<std::string>& fer2013_classes();

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t label(int64_t i) const = 0;
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
