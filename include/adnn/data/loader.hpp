#pragma once
// DataLoader: worker threads decode, preprocess and augment batches ahead of the trainer,
// or (any ExampleDataset: tensors, CSV, images) stack examples into batches as torch's,
// with bounded prefetch. The order and every random draw depend only on (seed, epoch,
// sample or batch index), never on thread timing, so a run is reproducible for a seed
// whatever the number of workers.
#include <adnn/data/dataset.hpp>
#include <adnn/data/transforms.hpp>

#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace adnn::data {

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;
  bool balanced = false;  // sample classes uniformly (with replacement) instead of a permutation
  int workers = 2;
  int prefetch = 4;       // batches ready or in flight ahead of the consumer
  uint64_t seed = 0;
  bool augment = true;
  bool skip_bad = false;  // skip unreadable files (counted) instead of stopping with their error
  std::vector<float> mean{0.5f}, std{0.5f};  // per channel, applied to pixels / 255
  Device device = kCPU;
  // Distributed sampling (torch's DistributedSampler): the epoch's order (the same on every
  // rank for a seed) is padded by repeating its start to a multiple of world_size (cut to
  // one when drop_last), and rank r takes positions r, r + W, r + 2W, ...; the ranks' shards
  // are disjoint, together the whole epoch. Augmentation draws depend on the global
  // position, so a sample is augmented alike whatever the number of ranks.
  int rank = 0;
  int world_size = 1;
};

struct Batch {
  // Any ExampleDataset: the stacked inputs (B, ...) and targets (B, ...) (undefined when the
  // dataset has none). The image loader sets them to images and labels.
  Tensor inputs, targets;
  Tensor images;  // (B, H, W, C) f32, normalised
  Tensor labels;  // (B) i64: the dominant class
  Tensor soft;    // (B, K) f32 target distribution (one-hot unless mixed by mixup)
  std::vector<int64_t> indices;  // dataset indices of the samples
  bool mixed = false;
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> ds, PreprocessOptions pre, AugmentOptions aug, LoaderOptions opts);
  // torch's DataLoader(dataset, batch_size, shuffle, drop_last): batches of stacked examples
  // (Batch::inputs, Batch::targets, Batch::indices) in the order of opts.shuffle / seed;
  // the image options (augment, balanced, mean/std, skip_bad) do not apply.
  DataLoader(std::shared_ptr<const ExampleDataset> ds, LoaderOptions opts);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Starts (or restarts) an epoch: fixes its order and launches the workers.
  void start_epoch(int64_t epoch);
  // The next batch in order, or nullopt at the end of the epoch. Rethrows a worker's error.
  std::optional<Batch> next();
  int64_t batches_per_epoch() const;
  int64_t skipped() const { return skipped_; }  // bad files skipped so far
  // The image dataset (an adnn::Error for a loader of a generic ExampleDataset).
  const Dataset& dataset() const;

 private:
  Batch make_batch(int64_t b);
  Batch make_example_batch(int64_t b);
  void stop();
  std::shared_ptr<const Dataset> ds_;
  PreprocessOptions pre_;
  AugmentOptions aug_;
  LoaderOptions opts_;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;       // this rank's samples, in order
  std::vector<int64_t> positions_;   // their positions in the epoch's global order
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Batch> ready_;
  int64_t next_to_make_ = 0, next_to_give_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::atomic<int64_t> skipped_{0};
  std::shared_ptr<const ExampleDataset> examples_;  // the generic loader's dataset (ds_ is null)
};

}  // namespace adnn::data
