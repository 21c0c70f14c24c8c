// The explain suite: module hooks with removable handles, Grad-CAM / Grad-CAM++ against
// PyTorch (tests/fixtures/gradcam_reference.safetensors, written by
// tests/fixtures/make_gradcam_reference.py), completeness of integrated gradients and expected
// gradients, zero attribution where the output does not look, the pictures, and the
// `adnn-fer explain` command on the committed checkpoint.
#include <adnn/explain/explain.hpp>
#include <adnn/explain/render.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return std::string(ADNN_SOURCE_DIR) + "/tests/fixtures/" + name; }

// The fixture's net (make_gradcam_reference.py), NHWC:
// conv1 3×3 1→4 → ReLU → conv2 3×3 s2 4→6 → act2 (ReLU) → conv3 1×1 6→5 → ReLU → mean → fc 5→3
struct CamNet : nn::Module {
  CamNet() {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(1, 4, 3).padding(1)));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(
                                         nn::Conv2dOptions(4, 6, 3).stride(2).padding(1)));
    act2 = register_module("act2", std::make_shared<nn::ReLU>());
    conv3 = register_module("conv3", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(6, 5, 1)));
    fc = register_module("fc", std::make_shared<nn::Linear>(5, 3));
  }
  Tensor forward(const Tensor& x) override {  // (N, 8, 8, 1) -> (N, 3)
    Tensor y = (*act2)((*conv2)(relu((*conv1)(x))));  // (N, 4, 4, 6)
    y = relu((*conv3)(y));                            // (N, 4, 4, 5)
    return (*fc)(global_avg_pool2d(y));
  }
  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::ReLU> act2;
  std::shared_ptr<nn::Linear> fc;
};

// A smooth net for the completeness checks: conv 3×3 C→4 → tanh → mean → fc 4→3. With
// left_half, only the left half of the image (columns < W/2) reaches the output.
struct SmoothNet : nn::Module {
  explicit SmoothNet(int64_t c, bool left_half = false) : left_half_(left_half) {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(c, 4, 3).padding(1)));
    fc = register_module("fc", std::make_shared<nn::Linear>(4, 3));
  }
  Tensor forward(const Tensor& x) override {  // (N, H, W, C) -> (N, 3)
    Tensor in = left_half_ ? x.narrow(2, 0, x.size(2) / 2) : x;
    return (*fc)(global_avg_pool2d(tanh(mul((*conv)(in), 2.0))));
  }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::Linear> fc;
  bool left_half_;
};

double total(const Tensor& t) { return sum(t.to(DType::f64)).item<double>(); }

}  // namespace

TEST_SUITE("explain") {
  TEST_CASE("forward hooks return removable handles; get_submodule by dotted name") {
    CamNet net;
    int calls = 0;
    auto h = net.conv2->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor&) {
      ++calls;
      return Tensor();
    });
    Tensor x = randn({1, 8, 8, 1});
    net(x);
    CHECK(calls == 1);
    h.remove();
    net(x);
    CHECK(calls == 1);
    h.remove();  // a second remove does nothing
    {
      nn::Module::HookGuard guard;
      guard.add(net.act2->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor& y) {
        ++calls;
        return mul(y, 0.0);  // a replacement output
      }));
      const Tensor logits = net(x);
      CHECK(calls == 2);
      // act2's output zeroed: conv3 gives its bias everywhere, so the logits are fc(relu(bias))
      check_values(logits, (*net.fc)(relu(net.conv3->bias).reshape({1, 5})).to_vector(), 1e-6);
    }
    net(x);
    CHECK(calls == 2);  // the guard removed it
    CHECK(&net.get_submodule("conv3") == net.conv3.get());
    CHECK(&net.get_submodule("") == &net);
    CHECK_THROWS_WITH_AS(net.get_submodule("conv9"), doctest::Contains("no module named 'conv9'"), Error);
    auto names = net.named_modules();
    REQUIRE(names.size() == 6);
    CHECK(names[1].first == "conv1");
  }

  TEST_CASE("default Grad-CAM layers of every ADNN-FER backbone exist and are 4-d maps") {
    struct Want {
      const char* backbone;
      bool cbam;
      std::vector<std::string> layers;
    };
    for (const Want& w : {Want{"vgg_nano", true, {"cbam_stage5", "cbam_head"}}, Want{"vgg_nano", false, {"block3", "block4"}},
                          Want{"resnet_nano", false, {"layer3", "layer4"}}}) {
      INFO(w.backbone << " cbam " << w.cbam);
      nn::FerConfig c = nn::fer_config("adnn_fer_nano");
      c.backbone = w.backbone;
      c.cbam = w.cbam;
      nn::AdnnFer m(c);
      const auto layers = explain::default_cam_layers(m);
      CHECK(layers == w.layers);
      for (const auto& l : layers) {
        Tensor out;
        auto h = m.get_submodule(l).register_forward_hook([&](nn::Module&, const Tensor&, const Tensor& y) {
          out = y;
          return Tensor();
        });
        m.eval();
        m(randn({1, 48, 48, 1}));
        CHECK(out.dim() == 4);
        CHECK(out.size(1) == 6);
      }
    }
  }

  TEST_CASE("Grad-CAM and Grad-CAM++ equal PyTorch (pytorch-grad-cam's arithmetic) within 1e-5") {
    io::SafeTensors st = io::load_safetensors(fixture("gradcam_reference.safetensors"));
    CamNet net;
    std::vector<std::pair<std::string, Tensor>> sd;
    for (auto& [n, t] : st.tensors)
      if (n.rfind("conv", 0) == 0 || n.rfind("fc", 0) == 0) sd.push_back({n, t});
    nn::load_pytorch_state_dict(net, sd);
    net.eval();
    const Tensor x = *st.find("input");  // (2, 8, 8, 1)
    double worst = 0;
    int checked = 0;
    for (auto method : {explain::CamMethod::gradcam, explain::CamMethod::gradcam_pp})
      for (const std::vector<std::string>& layers :
           {std::vector<std::string>{"act2"}, std::vector<std::string>{"conv3"}, std::vector<std::string>{"act2", "conv3"}})
        for (const std::string tag : {"pred", "cls"}) {
          std::string key = std::string(explain::cam_method_name(method)) + "." + layers[0];
          if (layers.size() > 1) key += "+" + layers[1];
          key += "." + tag;
          const Tensor* want = st.find(key);
          const Tensor* want_cls = st.find(key + ".classes");
          REQUIRE_MESSAGE(want, "fixture entry " << key);
          explain::CamOptions o;
          o.method = method;
          o.layers = layers;
          if (std::string(tag) == "cls") o.classes = {0, 2};
          explain::CamResult r = explain::grad_cam(net, x, o);
          REQUIRE(r.cam.sizes() == want->sizes());
          CHECK(r.classes == want_cls->to_vector<int64_t>());
          const double d = max_abs_diff(r.cam.to(DType::f64), want->to(DType::f64));
          INFO(key << ": max |adnn - torch| = " << d);
          CHECK(d <= 1e-5);
          CHECK(max_abs(r.cam) > 0.99);  // a non-trivial map (normalised to max 1)
          worst = std::max(worst, d);
          ++checked;
        }
    CHECK(checked == 12);
    MESSAGE("Grad-CAM / Grad-CAM++ vs PyTorch: worst max abs difference " << worst << " over " << checked << " maps");
    // no parameter gradient computed or left, parameters still trainable
    for (auto& p : net.parameters()) {
      CHECK(p.requires_grad());
      CHECK(!p.grad().defined());
    }
  }

  TEST_CASE("integrated gradients are complete: sum = f(x) - f(baseline)") {
    manual_seed(5);
    SmoothNet net(2);
    net.eval();
    const Tensor x = randn({2, 6, 6, 2}), base = zeros({1, 6, 6, 2});
    explain::Attribution a = explain::integrated_gradients(net, x, base, {1}, 64);
    REQUIRE(a.attr.sizes() == Shape{2, 6, 6, 2});
    REQUIRE(a.pixel.sizes() == Shape{2, 6, 6});
    for (int64_t n = 0; n < 2; ++n) {
      const double s = total(a.attr.select(0, n)), want = a.f_x[size_t(n)] - a.f_ref[size_t(n)];
      INFO("image " << n << ": sum " << s << ", f(x) - f(x') " << want);
      CHECK(std::abs(want) > 0.05);
      CHECK(std::abs(s - want) <= 1e-3 * std::max(1.0, std::abs(want)));  // midpoint rule, 64 steps, f32
    }
  }

  TEST_CASE("expected gradients are complete: stratified exactly-ish, random within sampling error") {
    manual_seed(6);
    SmoothNet net(1);
    net.eval();
    const Tensor x = randn({1, 6, 6, 1}), bg = randn({4, 6, 6, 1});
    // stratified: 4 backgrounds × 64 midpoints = integrated gradients from each, averaged
    explain::ShapOptions so;
    so.samples = 256;
    so.stratified = true;
    explain::Attribution a = explain::expected_gradients(net, x, bg, {2}, so);
    const double want = a.f_x[0] - a.f_ref[0], s = total(a.attr);
    INFO("stratified: sum " << s << ", f(x) - E[f(b)] " << want);
    CHECK(std::abs(want) > 0.05);
    CHECK(std::abs(s - want) <= 1e-3 * std::max(1.0, std::abs(want)));
    // random (b, α): unbiased; with 4096 samples the error is a few per cent of the spread
    so.stratified = false;
    so.samples = 4096;
    so.batch = 512;
    explain::Attribution r = explain::expected_gradients(net, x, bg, {2}, so);
    const double sr = total(r.attr);
    INFO("random: sum " << sr << ", f(x) - E[f(b)] " << want);
    CHECK(std::abs(sr - want) <= 0.05 * std::abs(want) + 0.01);
    // the same seed gives the same attributions
    explain::Attribution r2 = explain::expected_gradients(net, x, bg, {2}, so);
    CHECK(max_abs_diff(r.attr, r2.attr) == 0);
  }

  TEST_CASE("a model that looks only at the left half gets no attribution on the right half") {
    manual_seed(7);
    SmoothNet net(1, /*left_half=*/true);
    net.eval();
    const Tensor x = randn({1, 6, 8, 1}), bg = randn({3, 6, 8, 1});
    explain::ShapOptions so;
    so.samples = 48;
    so.noise_std = 0.1;  // GradientSHAP's noise too
    for (const explain::Attribution& a :
         {explain::integrated_gradients(net, x, zeros({1, 6, 8, 1}), {0}, 16),
          explain::expected_gradients(net, x, bg, {0}, so)}) {
      const Tensor right = a.pixel.narrow(2, 4, 4), left = a.pixel.narrow(2, 0, 4);
      CHECK(max_abs(right) == 0);
      CHECK(max_abs(left) > 1e-4);
    }
  }

  TEST_CASE("upsampling, normalisation and facial regions") {
    // a 2×2 map to 4×4, half-pixel centres (values as F.interpolate bilinear, align_corners=False)
    const std::vector<double> up = explain::upsample_bilinear({0, 1, 2, 3}, 2, 2, 4, 4);
    const std::vector<double> want = {0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3};
    for (size_t i = 0; i < want.size(); ++i) CHECK(up[i] == doctest::Approx(want[i]).epsilon(1e-12));
    std::vector<double> m = {2, 4, 6};
    explain::normalize_min_max(m);
    CHECK(m[0] == 0);
    CHECK(m[2] == doctest::Approx(1.0).epsilon(1e-6));
    const auto lm = explain::canonical_landmarks(48);
    CHECK(lm[0] == doctest::Approx(15.6).epsilon(1e-9));
    CHECK(lm[3] == doctest::Approx(18.0).epsilon(1e-9));
    CHECK(lm[4] == doctest::Approx(24.0).epsilon(1e-2));
    const auto mask = explain::region_mask(lm, 48, 48);
    auto at = [&](int x, int y) { return mask[size_t(y * 48 + x)]; };
    CHECK(at(16, 18) == explain::Region::eyes_brows);
    CHECK(at(31, 13) == explain::Region::eyes_brows);  // brow
    CHECK(at(24, 27) == explain::Region::nose);
    CHECK(at(24, 38) == explain::Region::mouth);
    CHECK(at(24, 32) == explain::Region::other);  // between the nose and the mouth
    CHECK(at(1, 46) == explain::Region::other);
    std::vector<double> ones(48 * 48, 1.0);
    const auto f = explain::region_fractions(ones, mask);
    CHECK(f[0] + f[1] + f[2] + f[3] == doctest::Approx(1.0));
    std::vector<double> eyes_only(48 * 48, 0.0);
    eyes_only[18 * 48 + 16] = 3;
    CHECK(explain::region_fractions(eyes_only, mask)[0] == 1.0);
  }

  TEST_CASE("heat-map pictures decode as PNGs of the right size") {
    data::Image face(48, 48, 1, 128.f);
    std::vector<double> map(6 * 6);
    for (size_t i = 0; i < map.size(); ++i) map[i] = double(i) / 35.0;
    const data::Image pic = explain::overlay_heatmap(face, map, 6, 6, 4);
    CHECK(pic.height == 192);
    CHECK(pic.width == 192);
    CHECK(pic.channels == 3);
    // top-left is the map's minimum (blue-ish), bottom-right its maximum (red-ish)
    CHECK(pic.at(0, 0, 2) > pic.at(0, 0, 0));
    CHECK(pic.at(191, 191, 0) > pic.at(191, 191, 2));
    const data::Image cap = explain::captioned(pic, {"happy 87%", "gradcam"}, 2);
    CHECK(cap.height == 192 + 2 * 14 + 2);
    const data::Image g = explain::grid({cap, cap, cap}, 2, 4);
    const auto bytes = data::encode_png(g);
    const data::Image back = data::decode_image(bytes.data(), bytes.size(), "grid");
    CHECK(back.width == 4 + 2 * (192 + 4));
    CHECK(back.height == 4 + 2 * (cap.height + 4));
    CHECK(back.channels == 3);
    const auto j0 = explain::jet(0), j1 = explain::jet(1);
    CHECK(j0[2] == doctest::Approx(127.5));  // dark blue
    CHECK(j1[0] == doctest::Approx(127.5));  // dark red
  }

  TEST_CASE("adnn-fer explain on the committed checkpoint: PNGs, grid, usage errors") {
#ifdef ADNN_FER_BIN
    const std::string ckpt = std::string(ADNN_SOURCE_DIR) + "/models/adnn_fer_nano.safetensors";
    const std::string val = std::string(ADNN_SOURCE_DIR) + "/../shared/data/fer2013/val";
    if (!fs::is_directory(val)) {
      ADNN_SKIP("no FER2013 data in ../shared/data");
      return;
    }
    std::vector<std::string> faces;
    for (const char* cls : {"happy", "surprise"}) {
      std::vector<fs::path> files;
      for (auto& e : fs::directory_iterator(val + "/" + cls)) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      faces.push_back(files.front().string());
    }
    const fs::path out = fs::temp_directory_path() / ("adnn_explain_test_" + std::to_string(::getpid()));
    fs::remove_all(out);
    auto run = [&](const std::string& args) {
      const std::string log = (out.string() + ".log");
      const std::string cmd = "OMP_NUM_THREADS=2 " + std::string(ADNN_FER_BIN) + " " + args + " > '" + log + "' 2>&1";
      const int rc = std::system(cmd.c_str());
      std::ifstream f(log);
      std::stringstream ss;
      ss << f.rdbuf();
      return std::pair<int, std::string>{WIFEXITED(rc) ? WEXITSTATUS(rc) : 128, ss.str()};
    };
    const auto res = run("explain --checkpoint '" + ckpt + "' '" + faces[0] + "' '" + faces[1] +
                          "' --method gradcam++ --out '" + out.string() + "'");
    const std::string text = res.second;  // (not a structured binding: INFO captures it, which clang refuses)
    INFO(text);
    REQUIRE(res.first == 0);
    for (const std::string& f : faces) {
      const fs::path png = out / (fs::path(f).stem().string() + "_gradcampp.png");
      REQUIRE(fs::is_regular_file(png));
      const data::Image im = data::read_image(png.string());
      CHECK(im.width == 192);              // 48 × zoom 4
      CHECK(im.height == 192 + 2 * 14 + 2);  // + two caption lines at scale 2
      CHECK(im.channels == 3);
    }
    CHECK(fs::is_regular_file(out / "explain_grid.png"));
    for (const fs::directory_entry& e : fs::directory_iterator(out))  // no temporary file left
      CHECK(e.path().extension() == ".png");
    CHECK(run("explain --checkpoint '" + ckpt + "' '" + faces[0] + "' --class 7 --out '" + out.string() + "'").first == 2);
    CHECK(run("explain --checkpoint '" + ckpt + "' '" + faces[0] + "' --method lime --out '" + out.string() + "'").first == 2);
    CHECK(run("explain --checkpoint '" + ckpt + "' --out '" + out.string() + "'").first == 2);
    CHECK(run("explain --checkpoint '" + ckpt + "' '" + faces[0] + "' --layers nope --out '" + out.string() + "'").first == 2);
    CHECK(run("explain --checkpoint /nonexistent.safetensors '" + faces[0] + "' --out '" + out.string() + "'").first == 1);
    CHECK(run("explain -h").first == 0);
    // --summary on a 14-image stratified slice of val: the table and the per-class picture
    const auto sum = run("explain --checkpoint '" + ckpt + "' --summary --data '" + val + "/..' --limit 14 --out '" +
                         out.string() + "'");
    const std::string sum_text = sum.second;
    INFO(sum_text);
    REQUIRE(sum.first == 0);
    const std::string table = (out / "explain_summary_val_gradcam.md").string();
    REQUIRE(fs::is_regular_file(table));
    std::ifstream tf(table);
    std::stringstream tss;
    tss << tf.rdbuf();
    CHECK(tss.str().find("| happy | 3 |") != std::string::npos);  // 14 · 895/3589 = 3.49: 3 (largest remainders elsewhere)
    CHECK(tss.str().find("(share of the area)") != std::string::npos);
    CHECK(data::read_image((out / "explain_summary_val_gradcam.png").string()).channels == 3);
    CHECK(run("explain --checkpoint '" + ckpt + "' --summary --class 1 --out '" + out.string() + "'").first == 2);
    fs::remove_all(out);
    fs::remove(out.string() + ".log");
#else
    ADNN_SKIP("adnn-fer not built");
#endif
  }
}
