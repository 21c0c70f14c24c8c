// adnn-fer: preprocessing options, class-stratified slices and the data directory (fer.hpp).
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "fer.hpp"

namespace adnn_fer {

using namespace adnn;
namespace fs = std::filesystem;

data::PreprocessOptions preprocess_options(const FerConfig& c) {
  data::PreprocessOptions p;
  p.size = int(c.image_size);
  p.channels = int(c.in_chans);
  p.clahe = true;
  return p;
}

namespace {
class Subset : public data::Dataset {
 public:
  Subset(std::shared_ptr<const data::Dataset> base, std::vector<int64_t> idx)
      : base_(std::move(base)), idx_(std::move(idx)) {}
  int64_t size() const override { return int64_t(idx_.size()); }
  int64_t label(int64_t i) const override { return base_->label(idx_.at(size_t(i))); }
  data::Image load(int64_t i) const override { return base_->load(idx_.at(size_t(i))); }
  std::string name(int64_t i) const override { return base_->name(idx_.at(size_t(i))); }
  const std::vector<std::string>& classes() const override { return base_->classes(); }

 private:
  std::shared_ptr<const data::Dataset> base_;
  std::vector<int64_t> idx_;
};
}  // namespace

std::shared_ptr<const data::Dataset> stratified_slice(std::shared_ptr<const data::Dataset> ds, int64_t n,
                                                      uint64_t seed) {
  if (n <= 0 || n >= ds->size()) return ds;
  // shuffle each class's indices, then take them round-robin in proportion to class size
  Generator g(seed);
  std::vector<std::vector<int64_t>> by(size_t(ds->num_classes()));
  for (int64_t i = 0; i < ds->size(); ++i) by[size_t(ds->label(i))].push_back(i);
  std::vector<int64_t> idx;
  for (auto& v : by) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[g.next_u64() % i]);
    const int64_t take = int64_t(std::llround(double(v.size()) * double(n) / double(ds->size())));
    idx.insert(idx.end(), v.begin(), v.begin() + std::min<int64_t>(take, int64_t(v.size())));
  }
  std::sort(idx.begin(), idx.end());
  return std::make_shared<Subset>(ds, idx);
}

std::string resolve_data_dir(const Args& a) {
  if (a.has("data")) return a.get("data");
  for (const std::string& p :
       {std::string("../shared/data/fer2013"), std::string(ADNN_FER_SOURCE_DIR) + "/../shared/data/fer2013"})
    if (fs::is_directory(p + "/train") || fs::is_directory(p + "/val")) return p;
  ADNN_FAIL(a.cmd, ": no --data given and ../shared/data/fer2013 is not there");
}

}  // namespace adnn_fer
