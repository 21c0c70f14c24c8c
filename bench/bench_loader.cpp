// Data loader throughput: FER2013 images per second through decode + CLAHE + the full
// augmentation chain + batching, with 1 and 2 worker threads (and 0: the calling thread).
// Reads ../shared/data/fer2013/train (or $ADNN_FER2013_DIR/train).
#include <adnn/data/loader.hpp>
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>

using namespace adnn;
using namespace adnn::data;

static std::shared_ptr<FolderDataset> fer_train() {
  static std::shared_ptr<FolderDataset> ds = [] {
    std::string root = std::getenv("ADNN_FER2013_DIR") ? std::getenv("ADNN_FER2013_DIR")
                                                         : std::string(ADNN_SOURCE_DIR) + "/../shared/data/fer2013";
    return std::filesystem::exists(root + "/train") ? std::make_shared<FolderDataset>(root + "/train") : nullptr;
  }();
  return ds;
}

static void BM_loader(benchmark::State& st) {
  auto ds = fer_train();
  if (!ds) {
    st.SkipWithError("FER2013 not found (set ADNN_FER2013_DIR)");
    return;
  }
  LoaderOptions o;
  o.batch_size = 64;
  o.workers = int(st.range(0));
  o.augment = st.range(1) != 0;
  DataLoader dl(ds, PreprocessOptions{}, AugmentOptions{}, o);
  const int64_t batches = 60;  // 3840 images per iteration
  int64_t images = 0, epoch = 0;
  for (auto _ : st) {
    dl.start_epoch(epoch++);
    for (int64_t b = 0; b < batches; ++b) images += dl.next()->labels.size(0);
  }
  st.counters["images/s"] = benchmark::Counter(double(images), benchmark::Counter::kIsRate);
}
// args: workers, augment
BENCHMARK(BM_loader)->Args({0, 1})->Args({1, 1})->Args({2, 1})->Args({2, 0})->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
