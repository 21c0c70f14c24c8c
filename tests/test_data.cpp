// Data pipeline: image I/O, colour conversions, CLAHE, transforms, datasets, loader; and,
// when ../shared/data/fer2013 is present, the real FER2013 folders.
#include <adnn/data/loader.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::data;
using namespace adnn::testing;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("adnn_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

Image pattern(int h, int w, int c) {
  Image img(h, w, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) img.at(y, x, k) = float((y * 31 + x * 7 + k * 50) % 256);
  return img;
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

std::string fer_dir() {
  if (const char* e = std::getenv("ADNN_FER2013_DIR")) return e;
  return std::string(ADNN_SOURCE_DIR) + "/../shared/data/fer2013";
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("PNG round trip, decode errors name the file") {
    fs::path d = temp_dir("io");
    for (int c : {1, 3}) {
      Image img = pattern(5, 7, c);
      const std::string p = (d / ("p" + std::to_string(c) + ".png")).string();
      write_png(p, img);
      Image back = read_image(p);
      CHECK(back.height == 5);
      CHECK(back.width == 7);
      CHECK(back.channels == c);
      CHECK(back.pixels == img.pixels);
    }
    CHECK(read_image((d / "p3.png").string(), 1).channels == 1);
    CHECK(read_image((d / "p1.png").string(), 3).channels == 3);
    write_text(d / "text.jpg", "this is not an image");
    CHECK_THROWS_WITH_AS(read_image((d / "text.jpg").string()), doctest::Contains("text.jpg is not a readable image"),
                         Error);
    write_text(d / "empty.png", "");
    CHECK_THROWS_WITH_AS(read_image((d / "empty.png").string()), doctest::Contains("empty.png is empty"), Error);
    // a truncated PNG
    std::ifstream f(d / "p3.png", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    write_text(d / "cut.png", bytes.substr(0, bytes.size() / 2));
    CHECK_THROWS_WITH_AS(read_image((d / "cut.png").string()), doctest::Contains("cut.png"), Error);
    CHECK_THROWS_WITH_AS(read_image((d / "missing.png").string()), doctest::Contains("cannot open"), Error);
    fs::remove_all(d);
  }

  TEST_CASE("resize and colour conversions") {
    Image ramp(1, 2, 1);
    ramp.at(0, 0) = 0;
    ramp.at(0, 1) = 100;
    Image r = resize(ramp, 1, 4, Resample::bilinear);
    testing::check_values(to_tensor(r), {0, 25, 75, 100}, 1e-5);
    Image flat(6, 5, 3, 77.f);
    for (float v : resize(flat, 11, 9, Resample::bicubic).pixels) CHECK(v == doctest::Approx(77));
    Image rgb(1, 3, 3);
    rgb.pixels = {255, 255, 255, 0, 0, 0, 255, 0, 0};
    Image lab = rgb_to_lab(rgb);
    CHECK(lab.at(0, 0, 0) == doctest::Approx(100).epsilon(1e-3));
    CHECK(std::fabs(lab.at(0, 0, 1)) < 0.01);
    CHECK(std::fabs(lab.at(0, 0, 2)) < 0.01);
    CHECK(lab.at(0, 1, 0) == doctest::Approx(0));
    CHECK(lab.at(0, 2, 0) == doctest::Approx(53.24).epsilon(1e-3));  // pure red: L* 53.24, a* 80.09
    CHECK(lab.at(0, 2, 1) == doctest::Approx(80.09).epsilon(2e-3));
    Image p = pattern(4, 4, 3), back = lab_to_rgb(rgb_to_lab(p));
    for (size_t i = 0; i < p.pixels.size(); ++i) CHECK(back.pixels[i] == doctest::Approx(p.pixels[i]).epsilon(0.01).scale(1));
    Image g = rgb_to_gray(gray_to_rgb(pattern(3, 3, 1)));
    for (size_t i = 0; i < g.pixels.size(); ++i) CHECK(g.pixels[i] == doctest::Approx(pattern(3, 3, 1).pixels[i]));
  }

  TEST_CASE("CLAHE: known values, range, and the gray shortcut equals the LAB path") {
    // 48x48 constant 100: 6x6 tiles, clip limit max(1, int(2*36/256)) = 1; 35 clipped counts
    // go one each to bins 0, 7, ..., 238; cdf(100) = 15 + 1 = 16 -> round(16 * 255 / 36) = 113
    Image flat(48, 48, 1, 100.f);
    for (float v : clahe(flat).pixels) CHECK(v == 113);
    // a non-divisible size is padded by reflection; values stay in range and integral
    Image p = pattern(45, 50, 1), eq = clahe(p, 3.0, 4, 4);
    CHECK(eq.height == 45);
    CHECK(eq.width == 50);
    for (float v : eq.pixels) CHECK((v >= 0 && v <= 255 && v == std::round(v)));
    Image gray = pattern(48, 48, 1);
    Image fast = clahe_lab(gray), full = rgb_to_gray(clahe_lab(gray_to_rgb(gray)));
    int off = 0;
    for (size_t i = 0; i < fast.pixels.size(); ++i) off += std::fabs(fast.pixels[i] - full.pixels[i]) > 1.0;
    CHECK(off == 0);
  }

  TEST_CASE("augmentations: exact building blocks, seeded chain") {
    Image p = pattern(4, 5, 1);
    Image f = hflip(p);
    CHECK(f.at(1, 0) == p.at(1, 4));
    CHECK(hflip(f).pixels == p.pixels);
    Image c = cutout(p, 2, 2, 2);
    CHECK(c.at(1, 1) == 0);
    CHECK(c.at(2, 2) == 0);
    CHECK(c.at(3, 3) == p.at(3, 3));
    for (size_t i = 0; i < p.pixels.size(); ++i) CHECK(rotate(p, 0).pixels[i] == doctest::Approx(p.pixels[i]));
    Image sq = pattern(5, 5, 1), r90 = rotate(sq, 90);
    for (int y = 0; y < 5; ++y)
      for (int x = 0; x < 5; ++x) CHECK(r90.at(y, x) == doctest::Approx(sq.at(x, 4 - y)).epsilon(1e-4));
    CHECK(adjust_brightness(Image(1, 1, 1, 100.f), 1.5).at(0, 0) == 150);
    CHECK(adjust_brightness(Image(1, 1, 1, 200.f), 1.5).at(0, 0) == 255);
    for (float v : adjust_contrast(p, 0).pixels) CHECK(v == doctest::Approx(adjust_contrast(p, 0).pixels[0]));
    Image cr = crop_resize(p, 1, 1, 2, 2, 2, 2);
    CHECK(cr.at(0, 0) == p.at(1, 1));
    CHECK(cr.at(1, 1) == p.at(2, 2));
    Generator g1(5), g2(5);
    Image a1 = augment(pattern(48, 48, 1), AugmentOptions{}, g1), a2 = augment(pattern(48, 48, 1), AugmentOptions{}, g2);
    CHECK(a1.pixels == a2.pixels);
    Generator g3(5);
    CHECK(augment(p, AugmentOptions::none(), g3).pixels == p.pixels);
    Generator gb(9);
    double m = 0;
    for (int i = 0; i < 4000; ++i) m += sample_beta(0.2, gb);
    CHECK(m / 4000 == doctest::Approx(0.5).epsilon(0.05));
  }

  TEST_CASE("datasets: class folders and the FER2013 CSV, with clear errors") {
    fs::path d = temp_dir("ds");
    for (auto cls : {"happy", "angry"})
      for (int i = 0; i < 3; ++i) {
        fs::create_directories(d / cls);
        write_png((d / cls / ("img" + std::to_string(i) + ".png")).string(), pattern(8, 8, 1));
      }
    FolderDataset ds(d.string());
    CHECK(ds.size() == 6);
    CHECK(ds.num_classes() == 7);
    CHECK(ds.label(0) == 0);  // angry first (class order), then happy = 3
    CHECK(ds.label(5) == 3);
    CHECK(ds.class_counts() == std::vector<int64_t>{3, 0, 0, 3, 0, 0, 0});
    CHECK(ds.load(2).height == 8);
    fs::create_directories(d / "contempt");
    CHECK_THROWS_WITH_AS(FolderDataset(d.string()), doctest::Contains("unknown class folder 'contempt'"), Error);
    fs::remove_all(d / "contempt");
    CHECK_THROWS_WITH_AS(FolderDataset((d / "nope").string()), doctest::Contains("is not a directory"), Error);
    fs::path e = temp_dir("empty");
    CHECK_THROWS_WITH_AS(FolderDataset(e.string()), doctest::Contains("has no class folders"), Error);
    fs::create_directories(e / "sad");
    CHECK_THROWS_WITH_AS(FolderDataset(e.string()), doctest::Contains("no images under"), Error);

    std::string px;
    for (int i = 0; i < 2304; ++i) px += (i ? " " : "") + std::to_string(i % 256);
    write_text(d / "fer.csv", "emotion,pixels,Usage\n3," + px + ",Training\n0," + px + ",PublicTest\n6," + px +
                                  ",PrivateTest\n");
    Fer2013Csv train((d / "fer.csv").string(), "Training"), pub((d / "fer.csv").string(), "PublicTest");
    CHECK(train.size() == 1);
    CHECK(train.label(0) == 3);
    CHECK(pub.label(0) == 0);
    CHECK(train.load(0).at(0, 5) == 5);
    CHECK(train.load(0).at(47, 47) == float(2303 % 256));
    CHECK(Fer2013Csv((d / "fer.csv").string(), "").size() == 3);
    write_text(d / "bad.csv", "emotion,pixels,Usage\n3,1 2 3,Training\n");
    CHECK_THROWS_WITH_AS(Fer2013Csv((d / "bad.csv").string(), "Training"),
                         doctest::Contains("bad.csv:2: 3 pixels, expected 2304"), Error);
    fs::remove_all(d);
    fs::remove_all(e);
  }

  TEST_CASE("generic datasets: TensorDataset, CsvDataset, image datasets through one DataLoader") {
    // TensorDataset (N, 2, 3) inputs, (N) targets
    Tensor x = arange(0, 30).to(DType::f32).reshape({5, 2, 3});
    Tensor y = arange(10, 15).to(DType::i64);
    auto td = std::make_shared<TensorDataset>(x, y);
    CHECK(td->size() == 5);
    Example e = td->get(3);
    CHECK(e.input.sizes() == Shape{2, 3});
    CHECK(e.input.select(0, 1).select(0, 2).item<double>() == 23);
    CHECK(e.target.item<double>() == 13);
    CHECK_THROWS_WITH_AS(td->get(5), doctest::Contains("TensorDataset: index 5 out of range (size 5)"), Error);
    CHECK_THROWS_WITH_AS(TensorDataset(x, zeros({4})), doctest::Contains("differ in their first dimension"), Error);

    LoaderOptions o;
    o.batch_size = 2;
    o.shuffle = false;
    o.workers = 0;
    DataLoader plain(td, o);
    CHECK(plain.batches_per_epoch() == 3);
    plain.start_epoch(0);
    std::vector<int64_t> order;
    int64_t batches = 0;
    while (auto b = plain.next()) {
      CHECK(b->inputs.size(0) == b->targets.size(0));
      CHECK(b->inputs.sizes().size() == 3);
      for (int64_t j = 0; j < b->targets.size(0); ++j) {
        order.push_back(b->targets.select(0, j).item<int64_t>() - 10);
        CHECK(max_abs_diff(b->inputs.select(0, j), x.select(0, order.back())) == 0);
      }
      ++batches;
    }
    CHECK(batches == 3);
    CHECK(order == std::vector<int64_t>{0, 1, 2, 3, 4});
    // shuffled, two workers, drop_last: a permutation for the seed, the same on every run
    o.shuffle = true;
    o.drop_last = true;
    o.workers = 2;
    o.seed = 7;
    auto epoch_order = [&](int workers) {
      LoaderOptions w = o;
      w.workers = workers;
      DataLoader dl(td, w);
      dl.start_epoch(1);
      std::vector<int64_t> idx;
      while (auto b = dl.next()) idx.insert(idx.end(), b->indices.begin(), b->indices.end());
      return idx;
    };
    const auto shuffled = epoch_order(2);
    CHECK(shuffled.size() == 4);
    CHECK(shuffled == epoch_order(0));
    o.balanced = true;
    CHECK_THROWS_WITH_AS(DataLoader(td, o), doctest::Contains("balanced sampling needs an image Dataset"), Error);
    DataLoader inputs_only(std::make_shared<TensorDataset>(x), LoaderOptions{});
    inputs_only.start_epoch(0);
    auto b0 = inputs_only.next();
    REQUIRE(b0);
    CHECK(b0->inputs.sizes() == Shape{5, 2, 3});
    CHECK_FALSE(b0->targets.defined());
    CHECK_THROWS_WITH_AS(inputs_only.dataset(), doctest::Contains("generic ExampleDataset"), Error);

    // CsvDataset: features by name, the target column chosen, numbers checked
    std::istringstream csv("a, b ,label,c\n1,2,0,3\n\n4,5.5,2,-6e1\n");
    CsvDataset cd(csv, "iris.csv", CsvOptions{.target = "label"});
    CHECK(cd.size() == 2);
    CHECK(cd.feature_names() == std::vector<std::string>{"a", "b", "c"});
    check_values(cd.get(1).input, {4, 5.5, -60});
    CHECK(cd.get(1).target.dtype() == DType::i64);
    CHECK(cd.get(1).target.item<int64_t>() == 2);
    std::istringstream reg("x,y\n1,0.5\n");
    CHECK(CsvDataset(reg, "reg.csv", CsvOptions{.integer_target = false}).get(0).target.item<double>() == 0.5);
    std::istringstream bad("a,label\n1,2\nx,3\n");
    CHECK_THROWS_WITH_AS(CsvDataset(bad, "bad.csv"), doctest::Contains("bad.csv:3 column 'a'"), Error);
    std::istringstream ragged("a,label\n1,2,3\n");
    CHECK_THROWS_WITH_AS(CsvDataset(ragged, "r.csv"), doctest::Contains("r.csv:2: 3 cells, the header has 2"), Error);
    std::istringstream nolabel("a,b\n1,2\n");
    CHECK_THROWS_WITH_AS(CsvDataset(nolabel, "n.csv", CsvOptions{.target = "label"}),
                         doctest::Contains("n.csv has no column 'label'"), Error);
    o = LoaderOptions{};
    o.shuffle = false;
    DataLoader csv_loader(std::make_shared<CsvDataset>(cd), o);
    csv_loader.start_epoch(0);
    auto cb = csv_loader.next();
    REQUIRE(cb);
    CHECK(cb->inputs.sizes() == Shape{2, 3});
    check_values(cb->targets.to(DType::f64), {0, 2});

    // an image folder as an ExampleDataset: (H, W, C) in [0, 1] and the label
    fs::path d = temp_dir("generic");
    for (auto cls : {"sad", "fear"}) {
      fs::create_directories(d / cls);
      write_png((d / cls / "a.png").string(), pattern(6, 5, 1));
    }
    auto folder = std::make_shared<FolderDataset>(d.string());
    Example im = folder->get(1);  // fear (2) before sad (4)
    CHECK(im.input.sizes() == Shape{6, 5, 1});
    CHECK(im.input.select(0, 1).select(0, 2).item<double>() == doctest::Approx((31 + 14) / 255.0));
    CHECK(im.target.item<int64_t>() == 4);
    DataLoader images(std::shared_ptr<const ExampleDataset>(folder), o);
    images.start_epoch(0);
    auto ib = images.next();
    REQUIRE(ib);
    CHECK(ib->inputs.sizes() == Shape{2, 6, 5, 1});
    check_values(ib->targets.to(DType::f64), {2, 4});
    fs::remove_all(d);
  }

  TEST_CASE("loader: deterministic for a seed whatever the workers, prefetch, mixup, bad files") {
    fs::path d = temp_dir("loader");
    for (int cls = 0; cls < 3; ++cls) {
      fs::create_directories(d / fer2013_classes()[size_t(cls)]);
      for (int i = 0; i < 7; ++i) {
        Image img = pattern(48, 48, 1);
        for (auto& v : img.pixels) v = std::fmod(v + float(cls * 40 + i * 3), 256.f);
        write_png((d / fer2013_classes()[size_t(cls)] / ("i" + std::to_string(i) + ".png")).string(), img);
      }
    }
    auto ds = std::make_shared<FolderDataset>(d.string());
    LoaderOptions o;
    o.batch_size = 4;
    o.seed = 11;
    auto collect = [&](int workers) {
      LoaderOptions w = o;
      w.workers = workers;
      DataLoader dl(ds, PreprocessOptions{}, AugmentOptions{}, w);
      dl.start_epoch(3);
      std::vector<std::vector<double>> out;
      while (auto b = dl.next()) {
        CHECK(b->images.sizes() == Shape{b->labels.size(0), 48, 48, 1});
        auto s = sum(b->soft, {1}).to_vector();
        for (double v : s) CHECK(v == doctest::Approx(1.0));
        out.push_back(b->images.to_vector());
        out.push_back(b->labels.to_vector());
      }
      return out;
    };
    auto a = collect(0), b1 = collect(1), b2 = collect(2);
    CHECK(a.size() == 2 * 6);  // 21 images, batch 4: 6 batches
    CHECK(a == b1);
    CHECK(a == b2);
    {
      LoaderOptions w = o;
      w.drop_last = true;
      w.augment = false;
      w.shuffle = false;
      DataLoader dl(ds, PreprocessOptions{}, AugmentOptions{}, w);
      CHECK(dl.batches_per_epoch() == 5);
      dl.start_epoch(0);
      auto first = dl.next();
      CHECK(first->indices == std::vector<int64_t>{0, 1, 2, 3});
      CHECK(!first->mixed);
    }
    {  // balanced sampling draws every class about equally
      LoaderOptions w = o;
      w.balanced = true;
      w.augment = false;
      w.batch_size = 21;
      DataLoader dl(ds, PreprocessOptions{}, AugmentOptions::none(), w);
      int64_t counts[3] = {0, 0, 0};
      for (int e = 0; e < 20; ++e) {
        dl.start_epoch(e);
        while (auto bb = dl.next())
          for (double l : bb->labels.to_vector()) counts[int(l)]++;
      }
      for (int64_t c : counts) CHECK((c > 100 && c < 180));
    }
    // a corrupt file stops the run with its path, or is skipped and counted
    write_text(d / "angry" / "zz_bad.png", "garbage");
    auto bad = std::make_shared<FolderDataset>(d.string());
    {
      DataLoader dl(bad, PreprocessOptions{}, AugmentOptions::none(), o);
      dl.start_epoch(0);
      CHECK_THROWS_WITH_AS(([&] { while (dl.next()) {} }()), doctest::Contains("zz_bad.png"), Error);
    }
    {
      LoaderOptions w = o;
      w.skip_bad = true;
      DataLoader dl(bad, PreprocessOptions{}, AugmentOptions::none(), w);
      dl.start_epoch(0);
      int64_t n = 0;
      while (auto bb = dl.next()) n += bb->labels.size(0);
      CHECK(n == 21);
      CHECK(dl.skipped() == 1);
    }
    fs::remove_all(d);
  }

  TEST_CASE("FER2013 on disk: exact counts, 48x48x1, a full pass over val") {
    const std::string root = fer_dir();
    if (!fs::exists(root + "/val")) ADNN_SKIP("FER2013 not found at " << root);
    FolderDataset val(root + "/val");
    CHECK(val.size() == 3589);
    CHECK(val.class_counts() == std::vector<int64_t>{467, 56, 496, 895, 653, 415, 607});
    FolderDataset train(root + "/train");
    CHECK(train.size() == 28709);
    CHECK(train.class_counts() == std::vector<int64_t>{3995, 436, 4097, 7215, 4830, 3171, 4965});
    Image first = val.load(0);
    CHECK(first.height == 48);
    CHECK(first.width == 48);
    CHECK(first.channels == 1);
    LoaderOptions o;
    o.batch_size = 256;
    o.shuffle = false;
    DataLoader dl(std::make_shared<FolderDataset>(val), PreprocessOptions{}, AugmentOptions{}, o);
    dl.start_epoch(0);
    int64_t seen = 0;
    while (auto b = dl.next()) seen += b->labels.size(0);
    CHECK(seen == 3589);
    CHECK(dl.skipped() == 0);
  }
}
