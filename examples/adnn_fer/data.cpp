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
  ADNN_CHECK(ds->size() < (int64_t(1) << 31), "stratified_slice: ", ds->size(), " images are more than 2^31");
  // shuffle each class's indices, then take from each in proportion to its size
  Generator g(seed);
  std::vector<std::vector<int64_t>> by(size_t(ds->num_classes()));
  for (int64_t i = 0; i < ds->size(); ++i) by[size_t(ds->label(i))].push_back(i);
  // exactly n in all: each class its floor share, then one more for the largest remainders
  // (ties to the lower class index)
  const int64_t N = ds->size();
  std::vector<int64_t> take(by.size());
  std::vector<std::pair<int64_t, size_t>> rest;  // (remainder numerator, class)
  int64_t given = 0;
  for (size_t k = 0; k < by.size(); ++k) {
    const int64_t share = int64_t(by[k].size()) * n;  // n < N < 2^31: no overflow
    take[k] = share / N;
    given += take[k];
    rest.emplace_back(share % N, k);
  }
  std::stable_sort(rest.begin(), rest.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (size_t i = 0; given < n && i < rest.size(); ++i, ++given) ++take[rest[i].second];
  std::vector<int64_t> idx;
  for (size_t k = 0; k < by.size(); ++k) {
    auto& v = by[k];
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[g.next_u64() % i]);
    idx.insert(idx.end(), v.begin(), v.begin() + take[k]);
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

void require_regular_file(const std::string& what, const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  ADNN_CHECK(fs::exists(st), what, " '", path, "' does not exist");
  ADNN_CHECK(!fs::is_directory(st), what, " '", path, "' is a directory, not a file");
  ADNN_CHECK(fs::is_regular_file(st), what, " '", path, "' is not a regular file");
}

}  // namespace adnn_fer
