// PyTorch-shaped layers (options with torch's defaults, pooling / flatten / identity /
// dropout modules, Sequential{...}, ModuleList, ModuleDict) and the export to PyTorch
// (nn::save_pytorch_safetensors, adnn-fer export) with a round trip through Debian's
// python3-torch: tests/export_roundtrip.py loads the exported state dict into the torch twin
// with load_state_dict(strict=True) and compares the logits. Skipped without python3-torch.
#include <sys/wait.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;
namespace fs = std::filesystem;

namespace {

std::string tmp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("adnn_export_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int run(const std::string& cmd, const std::string& log) {
  const int rc = std::system((cmd + " > '" + log + "' 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

// A python3 that imports torch: $ADNN_PYTHON, else Debian's /usr/bin/python3, else python3 on
// PATH; "" when none does.
std::string torch_python() {
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("ADNN_PYTHON")) candidates.push_back(p);
  candidates.push_back("/usr/bin/python3");
  candidates.push_back("python3");
  for (auto& c : candidates)
    if (std::system(("'" + c + "' -c 'import torch' > /dev/null 2>&1").c_str()) == 0) return c;
  return "";
}

// Writes the input and adnn's logits, runs tests/export_roundtrip.py on the exported weights,
// and checks that torch agrees.
void check_torch_round_trip(const std::string& python, const std::string& weights, const std::string& dir,
                            const Tensor& input, const Tensor& logits, std::map<std::string, std::string> meta) {
  const std::string io_path = dir + "/io.safetensors", log = dir + "/roundtrip.log";
  io::save_safetensors(io_path, {{"input", input.contiguous()}, {"logits", logits.contiguous()}}, meta);
  const int rc = run("'" + python + "' '" + std::string(ADNN_SOURCE_DIR) + "/tests/export_roundtrip.py' '" + weights +
                         "' '" + io_path + "'",
                     log);
  const std::string out = slurp(log);
  MESSAGE(out);
  CHECK_MESSAGE(rc == 0, out);
  CHECK(out.find("max |torch - adnn|") != std::string::npos);
}

// The nn::Sequential twin of export_roundtrip.py's sequential(): every layer option torch has
// and adnn maps (padding, stride, dilation, groups, bias, non-square kernels, padding modes).
std::shared_ptr<nn::Sequential> demo_sequential() {
  return std::make_shared<nn::Sequential>(
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 8, 3).padding(1)), std::make_shared<nn::BatchNorm2d>(8),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions(8, 8, 3).stride(2).padding(2).dilation(2).groups(4).bias(false)),
      std::make_shared<nn::MaxPool2d>(nn::MaxPool2dOptions(3).stride(1).padding(1)),
      std::make_shared<nn::Conv2d>(
          nn::Conv2dOptions(8, 12, {3, 5}).padding({1, 2}).padding_mode(nn::PaddingMode::reflect)),
      std::make_shared<nn::AvgPool2d>(nn::AvgPool2dOptions(2)),
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions(12, 12, 3).padding(1).padding_mode(nn::PaddingMode::replicate)),
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions(12, 16, 3).padding(1).padding_mode(nn::PaddingMode::circular)),
      std::make_shared<nn::AdaptiveAvgPool2d>(nn::Size2(3, 2)), std::make_shared<nn::Identity>(),
      std::make_shared<nn::AdaptiveAvgPool2d>(1), std::make_shared<nn::Flatten>(), std::make_shared<nn::Dropout>(0.5),
      std::make_shared<nn::Linear>(16, 5));
}

// Non-trivial BN statistics so that a layout or name slip shows in the logits.
void perturb_batch_norms(nn::Module& m) {
  NoGradGuard ng;
  for (auto& [n, t] : m.state_dict()) {
    if (n.ends_with("running_mean")) t.copy_(mul(randn(t.sizes()), 0.1));
    if (n.ends_with("running_var")) t.copy_(uniform(t.sizes(), 0.5, 1.5));
    if (n.ends_with("bn1.weight") || n.ends_with("bn2.weight") || n == "1.weight")
      t.copy_(uniform(t.sizes(), 0.5, 1.5));
  }
}

}  // namespace

TEST_SUITE("export") {
  TEST_CASE("Conv2dOptions: torch's defaults, chainable setters, NHWC shapes") {
    nn::Conv2dOptions o(1, 16, 3);
    CHECK(o.padding() == nn::Size2(0));  // torch: padding 0, bias on, stride 1, dilation 1, groups 1
    CHECK(o.bias());
    CHECK(o.stride() == nn::Size2(1));
    CHECK(o.groups() == 1);
    CHECK(o.padding_mode() == nn::PaddingMode::zeros);
    nn::Conv2dOptions c = nn::Conv2dOptions(1, 16, 3).stride(2).padding(1);
    CHECK(c.stride() == nn::Size2(2, 2));
    CHECK(c.padding() == nn::Size2(1, 1));

    nn::Conv2d plain(3, 16, 3);  // (N, 8, 8, 3) -> (N, 6, 6, 16): no padding
    CHECK(plain(randn({2, 8, 8, 3})).sizes() == Shape{2, 6, 6, 16});
    CHECK(plain.bias.defined());
    auto names = plain.named_parameters();
    REQUIRE(names.size() == 2);
    CHECK(names[0].first == "weight");
    CHECK(names[0].second.sizes() == Shape{16, 3, 3, 3});  // (O, KH, KW, C/groups)
    CHECK(names[1].first == "bias");
    nn::Conv2d strided(nn::Conv2dOptions(3, 4, {3, 5}).stride({2, 1}).padding({1, 2}).bias(false));
    CHECK(strided(randn({1, 9, 7, 3})).sizes() == Shape{1, 5, 7, 4});
    CHECK_FALSE(strided.bias.defined());
    CHECK(strided.weight.sizes() == Shape{4, 3, 5, 3});
    nn::Conv2d same(nn::Conv2dOptions(3, 4, 4).padding(nn::kSame));
    CHECK(same(randn({1, 7, 6, 3})).sizes() == Shape{1, 7, 6, 4});
    CHECK_THROWS_WITH_AS(nn::Conv2d(nn::Conv2dOptions(3, 4, 3).groups(2)),
                         doctest::Contains("must be positive multiples of groups 2"), Error);
    CHECK_THROWS_WITH_AS(
        nn::Conv2d(nn::Conv2dOptions(3, 4, 3).padding(nn::kSame).padding_mode(nn::PaddingMode::reflect)),
        doctest::Contains("padding 'same' with padding_mode 'reflect'"), Error);
    CHECK_THROWS_WITH_AS(plain(randn({1, 8, 8, 4})), doctest::Contains("Conv2d: expected (N, H, W, 3)"), Error);
    nn::Conv2d reflect(nn::Conv2dOptions(1, 1, 3).padding(3).padding_mode(nn::PaddingMode::reflect));
    CHECK_THROWS_WITH_AS(reflect(randn({1, 3, 3, 1})), doctest::Contains("needs padding < height size"), Error);
  }

  TEST_CASE("padding modes read the border as torch does") {
    // 1×1 identity kernel: the output is the padded input itself
    auto padded = [](nn::PaddingMode m) {
      nn::Conv2d c(nn::Conv2dOptions(1, 1, 1).padding({1, 2}).bias(false).padding_mode(m));
      NoGradGuard ng;
      c.weight.fill_(1.0);
      return c(arange(0, 6).to(DType::f32).reshape({1, 2, 3, 1})).reshape({4, 7});
    };
    // x = [[0 1 2], [3 4 5]]
    check_values(padded(nn::PaddingMode::zeros).select(0, 1), {0, 0, 0, 1, 2, 0, 0});
    check_values(padded(nn::PaddingMode::reflect).select(0, 0), {5, 4, 3, 4, 5, 4, 3});
    check_values(padded(nn::PaddingMode::replicate).select(0, 3), {3, 3, 3, 4, 5, 5, 5});
    check_values(padded(nn::PaddingMode::circular).select(0, 0), {4, 5, 3, 4, 5, 3, 4});
  }

  TEST_CASE("pooling, flatten, identity and dropout modules") {
    Tensor x = randn({2, 7, 6, 3});  // (N, H, W, C)
    NoGradGuard ng;
    Pool2dOptions p;
    p.kernel = {3, 3};
    p.stride = {2, 2};
    p.padding = {1, 1};
    CHECK(max_abs_diff(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1))(x), max_pool2d(x, p)) == 0);
    CHECK(nn::MaxPool2d(nn::MaxPool2dOptions(2))(x).sizes() == Shape{2, 3, 3, 3});  // stride defaults to the kernel
    p.count_include_pad = false;
    CHECK(max_abs_diff(nn::AvgPool2d(nn::AvgPool2dOptions(3).stride(2).padding(1).count_include_pad(false))(x),
                       avg_pool2d(x, p)) == 0);
    // adaptive bins of a 7×6 map into 3×4: rows [0,3) [2,5) [4,7), columns [0,2) [1,3) [3,5) [4,6)
    Tensor a = nn::AdaptiveAvgPool2d({3, 4})(x);
    CHECK(a.sizes() == Shape{2, 3, 4, 3});
    CHECK(max_abs_diff(a.select(1, 1).select(1, 1), mean(x.narrow(1, 2, 3).narrow(2, 1, 2), {1, 2})) < 1e-6);
    CHECK(max_abs_diff(a.select(1, 2).select(1, 3), mean(x.narrow(1, 4, 3).narrow(2, 4, 2), {1, 2})) < 1e-6);
    CHECK(max_abs_diff(nn::AdaptiveAvgPool2d(1)(x).reshape({2, 3}), global_avg_pool2d(x)) < 1e-6);
    CHECK(max_abs_diff(nn::AdaptiveAvgPool2d({7, 3})(x).select(2, 1), mean(x.narrow(2, 2, 2), {2})) < 1e-6);
    CHECK(nn::Flatten()(x).sizes() == Shape{2, 126});  // (N, H·W·C) in (H, W, C) order
    CHECK(nn::Flatten(1, 2)(x).sizes() == Shape{2, 42, 3});
    CHECK(max_abs_diff(nn::Identity()(x), x) == 0);
    nn::Dropout d;  // torch's default p = 0.5
    CHECK(d.p() == 0.5);
    d.eval();
    CHECK(max_abs_diff(d(x), x) == 0);
    d.train();
    Tensor y = d(ones({1000}));
    const double kept = sum(ne(y, zeros({1000}))).item<double>();
    CHECK(kept > 400);
    CHECK(kept < 600);
    CHECK_THROWS_WITH_AS(nn::Dropout(1.5), doctest::Contains("Dropout: p must be in [0, 1]"), Error);
  }

  TEST_CASE("Sequential{...}, ModuleList and ModuleDict") {
    auto conv = std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 3).padding(1));
    nn::Sequential s{conv, std::make_shared<nn::ReLU>(), std::make_shared<nn::Flatten>()};
    CHECK(s.size() == 3);
    CHECK(s(randn({2, 5, 5, 3})).sizes() == Shape{2, 100});
    CHECK(s.named_parameters()[0].first == "0.weight");
    CHECK(&s[0] == conv.get());
    nn::Sequential named{{"conv", conv}, {"act", std::make_shared<nn::ReLU>()}};
    CHECK(named.named_parameters()[1].first == "conv.bias");
    auto made = std::make_shared<nn::Sequential>(conv, std::make_shared<nn::Identity>());
    CHECK(made->size() == 2);

    nn::ModuleList l{std::make_shared<nn::Linear>(2, 3), std::make_shared<nn::Linear>(3, 4)};
    CHECK(l.size() == 2);
    CHECK(l.named_parameters()[2].first == "1.weight");
    CHECK(dynamic_cast<nn::Linear&>(l[1]).weight.sizes() == Shape{4, 3});

    nn::ModuleDict d{{"stem", conv}, {"head", std::make_shared<nn::Linear>(4, 2)}};
    CHECK(d.keys() == std::vector<std::string>{"stem", "head"});
    CHECK(d.contains("head"));
    CHECK(&d["stem"] == conv.get());
    CHECK(d.named_parameters()[2].first == "head.weight");
    CHECK_THROWS_WITH_AS(d["tail"], doctest::Contains("no module named 'tail' (modules: stem, head)"), Error);
    CHECK_THROWS_WITH_AS(d.insert("head", std::make_shared<nn::ReLU>()), doctest::Contains("'head' is already there"),
                         Error);
    CHECK_THROWS_WITH_AS(d.insert("a.b", std::make_shared<nn::ReLU>()), doctest::Contains("bad name 'a.b'"), Error);
  }

  TEST_CASE("README's library example (kept in step with README.md)") {
    const std::string dir = tmp_dir("readme");
    nn::Sequential net{
        std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 16, 3).padding(1)),  // (N, 28, 28, 16)
        std::make_shared<nn::BatchNorm2d>(16),
        std::make_shared<nn::ReLU>(),
        std::make_shared<nn::MaxPool2d>(nn::MaxPool2dOptions(2)),                         // (N, 14, 14, 16)
        std::make_shared<nn::Conv2d>(nn::Conv2dOptions(16, 32, 3).stride(2).padding(1)),  // (N, 7, 7, 32)
        std::make_shared<nn::ReLU>(),
        std::make_shared<nn::AdaptiveAvgPool2d>(1),
        std::make_shared<nn::Flatten>(),  // (N, 32)
        std::make_shared<nn::Dropout>(0.2),
        std::make_shared<nn::Linear>(32, 10)};  // (N, 10)
    Tensor x = randn({8, 28, 28, 3});           // (N, H, W, C)
    Tensor labels = from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}, {8});
    Tensor logits = net(x);
    CHECK(logits.sizes() == Shape{8, 10});
    Tensor loss = cross_entropy(logits, labels);
    loss.backward();
    CHECK(dynamic_cast<nn::Conv2d&>(net[0]).weight.grad().sizes() == Shape{16, 3, 3, 3});
    nn::save_pytorch_safetensors(net, dir + "/net.safetensors");
    io::SafeTensors st = io::load_safetensors(dir + "/net.safetensors");
    CHECK(st.find("0.weight")->sizes() == Shape{16, 3, 3, 3});  // torch's (O, I, KH, KW)
    CHECK(st.find("4.weight")->sizes() == Shape{32, 16, 3, 3});
    CHECK(st.find("9.bias")->sizes() == Shape{10});
    CHECK(st.metadata.at("format") == "pt");
    fs::remove_all(dir);
  }

  TEST_CASE("pytorch_state_dict: torch's conv layout, and back through load_pytorch_state_dict") {
    auto m = demo_sequential();
    perturb_batch_norms(*m);
    m->eval();
    auto sd = nn::pytorch_state_dict(*m);
    std::map<std::string, Tensor> by_name(sd.begin(), sd.end());
    CHECK(by_name.at("3.weight").sizes() == Shape{8, 2, 3, 3});  // (O, C/groups, KH, KW)
    CHECK(by_name.at("5.weight").sizes() == Shape{12, 8, 3, 5});
    CHECK(by_name.at("14.weight").sizes() == Shape{5, 16});  // Linear: (out, in) as torch
    CHECK(by_name.at("1.num_batches_tracked").dtype() == DType::i64);
    CHECK(
        by_name.at("5.weight").select(0, 2).select(0, 1).select(0, 1).select(0, 4).item<double>() ==  // [o][i][kh][kw]
        dynamic_cast<nn::Conv2d&>((*m)[5]).weight.select(0, 2).select(0, 1).select(0, 4).select(0, 1).item<double>());
    auto back = demo_sequential();
    nn::load_pytorch_state_dict(*back, sd);
    back->eval();
    NoGradGuard ng;
    Tensor x = randn({2, 16, 16, 3});
    CHECK(max_abs_diff((*back)(x), (*m)(x)) == 0);
  }

  TEST_CASE("torchvision EfficientNet names are the inverse of the parity fixture's map") {
    // the fixture holds torchvision's weights renamed to timm's (make_torch_fixtures.py)
    io::SafeTensors st =
        io::load_safetensors(std::string(ADNN_SOURCE_DIR) + "/tests/fixtures/torch_efficientnet_w025_d025.safetensors");
    std::vector<std::pair<std::string, Tensor>> timm;
    for (auto& [n, t] : st.tensors)
      if (n != "input" && n != "logits" && n != "config") timm.push_back({n, t});
    auto tv = nn::torchvision_efficientnet_names(timm);
    std::set<std::string> names;
    for (auto& [n, t] : tv) names.insert(n);
    CHECK(names.size() == timm.size());
    for (const char* n :
         {"features.0.0.weight", "features.0.1.running_var", "features.1.0.block.0.0.weight",
          "features.1.0.block.1.fc1.bias", "features.1.0.block.2.1.weight", "features.2.0.block.1.0.weight",
          "features.2.0.block.2.fc2.weight", "features.2.0.block.3.1.num_batches_tracked", "features.8.0.weight",
          "features.8.1.bias", "classifier.1.weight"})
      CHECK_MESSAGE(names.count(n), n);
    CHECK_THROWS_WITH_AS(nn::torchvision_efficientnet_names({{"head.fc.weight", zeros({1})}}),
                         doctest::Contains("'head.fc.weight' is not a timm EfficientNet name"), Error);
  }

  TEST_CASE("round trip through python3-torch: layers, torchvision EfficientNet, ADNN-FER nano") {
    const std::string python = torch_python();
    if (python.empty())
      ADNN_SKIP("no python3 with torch (Debian's python3-torch; scripts/setup-debian.sh installs it)");
    const std::string dir = tmp_dir("roundtrip");
    NoGradGuard ng;
    {  // every layer option against torch.nn
      auto m = demo_sequential();
      perturb_batch_norms(*m);
      m->eval();
      Tensor x = randn({2, 16, 16, 3});
      nn::save_pytorch_safetensors(*m, dir + "/seq.safetensors");
      check_torch_round_trip(python, dir + "/seq.safetensors", dir, x, (*m)(x), {{"model", "sequential"}});
    }
    {  // EfficientNet under torchvision's names
      nn::EfficientNetConfig c;
      c.width = 0.25;
      c.depth = 0.25;
      c.num_classes = 10;
      nn::EfficientNet e(c);
      perturb_batch_norms(e);
      e.eval();
      Tensor x = randn({2, 64, 64, 3});
      io::save_safetensors(dir + "/effnet.safetensors", nn::torchvision_efficientnet_names(nn::pytorch_state_dict(e)));
      check_torch_round_trip(
          python, dir + "/effnet.safetensors", dir, x, e(x),
          {{"model", "torchvision_efficientnet"}, {"width", "0.25"}, {"depth", "0.25"}, {"num_classes", "10"}});
    }
    // the nano backbones of the twin, random weights; the VGGs at 50×50 (floor pooling: a 6×6
    // grid where ceil would give 7×7; vgg_nano_wide's second convs then run on 12×12 and 6×6)
    // and vgg_nano with the encoder off (GAP head)
    for (auto [backbone, size, transformer] :
         {std::tuple{"vgg_nano", 50, true}, std::tuple{"resnet_nano", 48, true}, std::tuple{"vgg_nano", 48, false},
          std::tuple{"vgg_nano_wide", 50, true}}) {
      nn::FerConfig c = nn::fer_config("adnn_fer_nano");
      c.backbone = backbone;
      c.image_size = size;
      c.transformer = transformer;
      nn::AdnnFer m(c);
      perturb_batch_norms(m);
      m.eval();
      std::map<std::string, std::string> meta = c.to_map();
      meta["format"] = "pt";
      const std::string w = dir + "/fer_" + backbone + ".safetensors";
      io::save_safetensors(w, nn::pytorch_state_dict(m), meta);
      Tensor x = randn({2, size, size, 1});
      INFO(std::string(backbone) << " " << size << " transformer " << transformer);
      check_torch_round_trip(python, w, dir, x, m(x), {{"model", "adnn_fer"}});
    }
#ifdef ADNN_FER_BIN
    {  // the committed checkpoint through `adnn-fer export --to pytorch` into the torch twin
      const std::string ckpt = std::string(ADNN_SOURCE_DIR) + "/models/adnn_fer_nano.safetensors";
      const std::string out = dir + "/nano_torch.safetensors";
      const int rc = run(std::string(ADNN_FER_BIN) + " export --checkpoint '" + ckpt + "' --to pytorch '" + out + "'",
                         dir + "/export.log");
      REQUIRE_MESSAGE(rc == 0, slurp(dir + "/export.log"));
      CHECK(slurp(dir + "/export.log").find("wrote ") != std::string::npos);
      auto model = nn::load_adnn_fer(ckpt, kCPU);
      Tensor x = randn({3, 48, 48, 1});
      check_torch_round_trip(python, out, dir, x, (*model)(x), {{"model", "adnn_fer"}});
      // the backbone has no timm model: a clear error, exit 1
      CHECK(run(std::string(ADNN_FER_BIN) + " export --checkpoint '" + ckpt + "' --to timm '" + dir + "/t.safetensors'",
                dir + "/timm.log") == 1);
      CHECK(slurp(dir + "/timm.log").find("backbone '" + model->config().backbone + "'") != std::string::npos);
    }
#endif
    fs::remove_all(dir);
  }

#ifdef ADNN_FER_BIN
  TEST_CASE("adnn-fer export --to timm: the backbone under timm's EfficientNet names") {
    const std::string dir = tmp_dir("timm");
    nn::FerConfig c = nn::fer_config("adnn_fer_nano");
    c.backbone = "efficientnet_b0";
    c.image_size = 32;
    auto model = std::make_shared<nn::AdnnFer>(c);
    const std::string ckpt = dir + "/b0.safetensors", out = dir + "/b0_timm.safetensors";
    io::save_safetensors(ckpt, model->state_dict(), c.to_map());
    const int rc =
        run(std::string(ADNN_FER_BIN) + " export --checkpoint '" + ckpt + "' --to timm '" + out + "'", dir + "/log");
    REQUIRE_MESSAGE(rc == 0, slurp(dir + "/log"));
    io::SafeTensors st = io::load_safetensors(out);
    CHECK(st.metadata.at("timm.model") == "efficientnet_b0");
    CHECK(st.metadata.at("timm.num_classes") == "0");
    // exactly timm's efficientnet_b0 (num_classes=0, in_chans=1): adnn's EfficientNet names
    // are timm's (the parity suite checks them against torchvision's weights)
    auto timm = nn::create_model("efficientnet_b0", 1000, 1);
    std::map<std::string, Shape> want;
    for (auto& [n, t] : nn::pytorch_state_dict(*timm))
      if (n.rfind("classifier.", 0) != 0) want[n] = t.sizes();
    std::map<std::string, Shape> got;
    for (auto& [n, t] : st.tensors) got[n] = t.sizes();
    CHECK(got == want);
    CHECK(got.at("conv_stem.weight") == Shape{32, 1, 3, 3});  // torch's (O, I, KH, KW)
    CHECK(run(std::string(ADNN_FER_BIN) + " export --checkpoint '" + ckpt + "' '" + out + "'", dir + "/log2") == 2);
    fs::remove_all(dir);
  }
#endif
}
