// The data loader (see include/adnn/data/loader.hpp).
#include <adnn/data/loader.hpp>
#include <adnn/ops/ops.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace adnn::data {

namespace {
uint64_t mix(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t x = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull) * 0xbf58476d1ce4e5b9ull ^ c * 0x94d049bb133111ebull;
  x ^= x >> 31;
  x *= 0xd6e8feb86659fd93ull;
  return x ^ (x >> 32);
}
}  // namespace

DataLoader::DataLoader(std::shared_ptr<const Dataset> ds, PreprocessOptions pre, AugmentOptions aug, LoaderOptions opts)
    : ds_(std::move(ds)), pre_(pre), aug_(aug), opts_(std::move(opts)) {
  ADNN_CHECK(ds_ && ds_->size() > 0, "DataLoader: empty dataset");
  ADNN_CHECK(opts_.batch_size > 0 && opts_.workers >= 0 && opts_.prefetch >= 1, "DataLoader: bad options");
  ADNN_CHECK(opts_.mean.size() == size_t(pre_.channels) || opts_.mean.size() == 1,
             "DataLoader: mean needs 1 or ", pre_.channels, " values");
  ADNN_CHECK(opts_.std.size() == opts_.mean.size(), "DataLoader: mean and std differ in length");
  ADNN_CHECK(opts_.world_size >= 1 && opts_.rank >= 0 && opts_.rank < opts_.world_size, "DataLoader: rank ",
             opts_.rank, " is outside world_size ", opts_.world_size);
}

DataLoader::DataLoader(std::shared_ptr<const ExampleDataset> ds, LoaderOptions opts)
    : opts_(std::move(opts)), examples_(std::move(ds)) {
  ADNN_CHECK(examples_ && examples_->size() > 0, "DataLoader: empty dataset");
  ADNN_CHECK(opts_.batch_size > 0 && opts_.workers >= 0 && opts_.prefetch >= 1, "DataLoader: bad options");
  ADNN_CHECK(opts_.world_size >= 1 && opts_.rank >= 0 && opts_.rank < opts_.world_size, "DataLoader: rank ",
             opts_.rank, " is outside world_size ", opts_.world_size);
  ADNN_CHECK(!opts_.balanced, "DataLoader: balanced sampling needs an image Dataset (labels per class)");
}

const Dataset& DataLoader::dataset() const {
  ADNN_CHECK(ds_, "DataLoader::dataset: this loader batches a generic ExampleDataset, not an image Dataset");
  return *ds_;
}

DataLoader::~DataLoader() { stop(); }

void DataLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

int64_t DataLoader::batches_per_epoch() const {
  int64_t n = ds_ ? ds_->size() : examples_->size();
  const int64_t b = opts_.batch_size, W = opts_.world_size;
  if (W > 1) n = opts_.drop_last ? n / W : (n + W - 1) / W;  // this rank's shard
  return opts_.drop_last ? n / b : (n + b - 1) / b;
}

void DataLoader::start_epoch(int64_t epoch) {
  stop();
  epoch_ = epoch;
  const int64_t n = ds_ ? ds_->size() : examples_->size();
  Generator g(mix(opts_.seed, uint64_t(epoch), 0x0de5));
  order_.resize(size_t(n));
  if (opts_.balanced) {
    // uniform over classes, then uniform within the class
    std::vector<std::vector<int64_t>> by_class(size_t(ds_->num_classes()));
    for (int64_t i = 0; i < n; ++i) by_class[size_t(ds_->label(i))].push_back(i);
    std::vector<size_t> nonempty;
    for (size_t c = 0; c < by_class.size(); ++c)
      if (!by_class[c].empty()) nonempty.push_back(c);
    for (auto& v : order_) {
      auto& cls = by_class[nonempty[g.next_u64() % nonempty.size()]];
      v = cls[g.next_u64() % cls.size()];
    }
  } else {
    for (int64_t i = 0; i < n; ++i) order_[size_t(i)] = i;
    if (opts_.shuffle)
      for (int64_t i = n - 1; i > 0; --i) std::swap(order_[size_t(i)], order_[g.next_u64() % uint64_t(i + 1)]);
  }
  positions_.resize(order_.size());
  for (size_t i = 0; i < order_.size(); ++i) positions_[i] = int64_t(i);
  if (opts_.world_size > 1 && n > 0) {  // this rank's shard
    const int64_t W = opts_.world_size;
    const int64_t total = opts_.drop_last ? n / W * W : (n + W - 1) / W * W;
    std::vector<int64_t> mine, pos;
    for (int64_t k = opts_.rank; k < total; k += W) {
      mine.push_back(order_[size_t(k % n)]);
      pos.push_back(k);
    }
    order_ = std::move(mine);
    positions_ = std::move(pos);
  }
  ready_.clear();
  next_to_make_ = next_to_give_ = 0;
  stopping_ = false;
  error_ = nullptr;
  const int64_t nb = batches_per_epoch();
  for (int w = 0; w < opts_.workers; ++w)
    threads_.emplace_back([this, nb] {
      for (;;) {
        int64_t b;
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [&] {
            return stopping_ || error_ || (next_to_make_ < nb && next_to_make_ < next_to_give_ + opts_.prefetch);
          });
          if (stopping_ || error_ || next_to_make_ >= nb) return;
          b = next_to_make_++;
        }
        try {
          Batch batch = make_batch(b);
          std::lock_guard<std::mutex> lock(mu_);
          ready_.emplace(b, std::move(batch));
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu_);
          if (!error_) error_ = std::current_exception();
        }
        cv_.notify_all();
      }
    });
}

std::optional<Batch> DataLoader::next() {
  const int64_t nb = batches_per_epoch();
  if (next_to_give_ >= nb) return std::nullopt;
  if (opts_.workers == 0) {  // synchronous
    Batch b = make_batch(next_to_give_++);
    return b;
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return error_ || ready_.count(next_to_give_); });
  if (error_) std::rethrow_exception(error_);
  Batch b = std::move(ready_.at(next_to_give_));
  ready_.erase(next_to_give_);
  ++next_to_give_;
  lock.unlock();
  cv_.notify_all();
  return b;
}

Batch DataLoader::make_example_batch(int64_t b) {
  const int64_t n = int64_t(order_.size()), bs = opts_.batch_size;
  const int64_t lo = b * bs, hi = std::min(n, lo + bs);
  std::vector<Tensor> xs, ys;
  Batch out;
  for (int64_t k = lo; k < hi; ++k) {
    const int64_t i = order_[size_t(k)];
    Example e = examples_->get(i);
    ADNN_CHECK(e.input.defined(), "DataLoader: example ", i, " has no input");
    ADNN_CHECK(xs.empty() || (e.input.sizes() == xs.front().sizes() && e.target.defined() == !ys.empty() &&
                              (!e.target.defined() || e.target.sizes() == ys.front().sizes())),
               "DataLoader: example ", i, " is input ", e.input.desc(), " target ",
               e.target.defined() ? e.target.desc() : std::string("none"), " but example ", out.indices.front(),
               " is input ", xs.front().desc(), " target ", ys.empty() ? std::string("none") : ys.front().desc(),
               ": examples of a batch must have one shape");
    xs.push_back(e.input);
    if (e.target.defined()) ys.push_back(e.target);
    out.indices.push_back(i);
  }
  NoGradGuard ng;
  out.inputs = stack(xs, 0).to(opts_.device);  // (B, ...)
  if (!ys.empty()) out.targets = stack(ys, 0).to(opts_.device);
  return out;
}

Batch DataLoader::make_batch(int64_t b) {
  if (!ds_) return make_example_batch(b);
  const int64_t n = int64_t(order_.size()), bs = opts_.batch_size;
  const int64_t lo = b * bs, hi = std::min(n, lo + bs);
  const int C = pre_.channels, S = pre_.size;
  const int64_t K = ds_->num_classes();
  std::vector<Image> imgs;
  std::vector<int64_t> idx, labels;
  for (int64_t k = lo; k < hi; ++k) {
    const int64_t i = order_[size_t(k)];
    Image img;
    try {
      img = ds_->load(i);
    } catch (const Error&) {
      if (!opts_.skip_bad) throw;
      ++skipped_;
      continue;
    }
    img = preprocess(img, pre_);
    if (opts_.augment) {
      Generator g(mix(opts_.seed, uint64_t(epoch_), uint64_t(positions_[size_t(k)]) + 1));
      img = augment(img, aug_, g);
    }
    imgs.push_back(std::move(img));
    idx.push_back(i);
    labels.push_back(ds_->label(i));
  }
  const int64_t B = int64_t(imgs.size());
  Batch out;
  out.indices = idx;
  std::vector<float> px(size_t(B) * S * S * C), soft(size_t(B) * K, 0.f);
  for (int64_t j = 0; j < B; ++j) {
    const Image& im = imgs[size_t(j)];
    float* dst = px.data() + size_t(j) * S * S * C;
    for (size_t p = 0; p < im.pixels.size(); ++p) {
      const size_t c = opts_.mean.size() == 1 ? 0 : p % size_t(C);
      dst[p] = (im.pixels[p] / 255.f - opts_.mean[c]) / opts_.std[c];
    }
    soft[size_t(j * K + labels[size_t(j)])] = 1.f;
  }
  // batch-level mixup: pair sample j with a random partner
  if (opts_.augment) {
    Generator g(mix(opts_.seed, uint64_t(epoch_), 0xb000000000ull + uint64_t(b)));
    const bool on = g.uniform() < aug_.p_mixup && aug_.mixup && B > 1;
    const double lam = sample_beta(aug_.mixup_alpha, g);
    std::vector<int64_t> perm(static_cast<size_t>(B));
    for (int64_t j = 0; j < B; ++j) perm[size_t(j)] = j;
    for (int64_t j = B - 1; j > 0; --j) std::swap(perm[size_t(j)], perm[g.next_u64() % uint64_t(j + 1)]);
    if (on) {
      std::vector<float> px2 = px, soft2 = soft;
      const size_t per = size_t(S) * S * C;
      for (int64_t j = 0; j < B; ++j) {
        const int64_t p = perm[size_t(j)];
        for (size_t q = 0; q < per; ++q)
          px[size_t(j) * per + q] = float(lam * px2[size_t(j) * per + q] + (1 - lam) * px2[size_t(p) * per + q]);
        for (int64_t c = 0; c < K; ++c)
          soft[size_t(j * K + c)] = float(lam * soft2[size_t(j * K + c)] + (1 - lam) * soft2[size_t(p * K + c)]);
      }
      out.mixed = true;
    }
  }
  for (int64_t j = 0; j < B; ++j)
    labels[size_t(j)] = std::max_element(soft.begin() + j * K, soft.begin() + (j + 1) * K) - (soft.begin() + j * K);
  Tensor images = empty({B, S, S, C});
  if (!px.empty()) std::memcpy(images.data_ptr(), px.data(), px.size() * sizeof(float));
  Tensor soft_t = empty({B, K});
  if (!soft.empty()) std::memcpy(soft_t.data_ptr(), soft.data(), soft.size() * sizeof(float));
  out.images = images.to(opts_.device);
  out.soft = soft_t.to(opts_.device);
  out.labels = from_vector(labels, {B}).to(opts_.device);
  out.inputs = out.images;
  out.targets = out.labels;
  return out;
}

}  // namespace adnn::data
