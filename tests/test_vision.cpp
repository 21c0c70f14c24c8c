// The vision suite: RetinaFace against the PyTorch reference on crowd.jpg, prior boxes,
// NMS against brute force, the similarity transform, warp_affine (and their registry cases:
// nms and warp_affine on cpu and cuda), no-face and oversized images, the detect CLI.
#include <adnn/vision/align.hpp>
#include <adnn/vision/detect.hpp>

#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;
using V = std::vector<Tensor>;
namespace fs = std::filesystem;

namespace {

std::string retinaface_dir() {
  if (const char* e = std::getenv("ADNN_RETINAFACE_DIR")) return e;
  return std::string(ADNN_SOURCE_DIR) + "/../shared/data/retinaface";
}

// 150 boxes in 12 clusters (so NMS suppresses within them), as (x1, y1, x2, y2).
Tensor clustered_boxes() {
  Tensor c = mul(rand({12, 2}), 100.0);
  std::vector<double> v;
  const std::vector<double> cv = c.to_vector();
  Tensor j = randn({150, 4}, DType::f64);
  const std::vector<double> jv = j.to_vector();
  for (int i = 0; i < 150; ++i) {
    const double cx = cv[size_t(i % 12) * 2], cy = cv[size_t(i % 12) * 2 + 1];
    const double w = 10 + 3 * std::fabs(jv[size_t(i) * 4 + 2]), h = 10 + 3 * std::fabs(jv[size_t(i) * 4 + 3]);
    const double x = cx + 2 * jv[size_t(i) * 4], y = cy + 2 * jv[size_t(i) * 4 + 1];
    v.insert(v.end(), {x - w / 2, y - h / 2, x + w / 2, y + h / 2});
  }
  return from_vector(v, {150, 4}, DType::f64);
}

InputSpec fixed(std::function<Tensor()> f) { return InputSpec{{}, Domain::any, false, std::move(f)}; }

// Inverse maps (B, 2, 3): rotation + scale + shift (taps fall outside the image too).
Tensor warp_matrices(int64_t B) {
  std::vector<double> m;
  for (int64_t b = 0; b < B; ++b) {
    const double t = 0.3 + 0.4 * double(b), s = 0.8 + 0.15 * double(b);
    m.insert(m.end(), {s * std::cos(t), -s * std::sin(t), 0.7 + 0.3 * double(b), s * std::sin(t), s * std::cos(t),
                       -0.4 + 0.2 * double(b)});
  }
  return from_vector(m, {B, 2, 3}, DType::f64);
}

Register vision_cases({
    {"warp_affine_bicubic", {in({1, 6, 7, 2}), fixed([] { return warp_matrices(1); })},
     [](const V& x) { return warp_affine(x[0], x[1], 5, 4, InterpMode::bicubic); }},
    {"warp_affine_bilinear_crops", {in({1, 5, 6, 3}), fixed([] { return warp_matrices(3); })},
     [](const V& x) { return warp_affine(x[0], x[1], 4, 5, InterpMode::bilinear); }},
    {"warp_affine_bicubic_batch", {in({2, 5, 5, 1}), fixed([] { return warp_matrices(2); })},
     [](const V& x) { return warp_affine(x[0], x[1], 6, 3, InterpMode::bicubic); }},
    // non-differentiable: the kept boxes, in rank order
    {"nms",
     {fixed(clustered_boxes), fixed([] { return rand({150}).to(DType::f64); })},
     [](const V& x) { return index_select(x[0], 0, nms(x[0], x[1], 0.4, 1.0)); },
     1e-5, 1e-4, false, false},
});

// The greedy reference, written the naive way: repeatedly take the best remaining box.
std::vector<int64_t> brute_force_nms(const std::vector<double>& b, const std::vector<double>& s, double thr,
                                     double off) {
  const size_t n = s.size();
  std::vector<bool> gone(n, false);
  std::vector<int64_t> keep;
  for (;;) {
    int64_t best = -1;
    for (size_t i = 0; i < n; ++i)
      if (!gone[i] && (best < 0 || s[i] > s[size_t(best)])) best = int64_t(i);
    if (best < 0) break;
    keep.push_back(best);
    gone[size_t(best)] = true;
    const double* a = &b[size_t(best) * 4];
    for (size_t j = 0; j < n; ++j) {
      if (gone[j]) continue;
      const double* c = &b[j * 4];
      const double iw = std::max(0.0, std::min(a[2], c[2]) - std::max(a[0], c[0]) + off);
      const double ih = std::max(0.0, std::min(a[3], c[3]) - std::max(a[1], c[1]) + off);
      const double inter = iw * ih;
      const double u = (a[2] - a[0] + off) * (a[3] - a[1] + off) + (c[2] - c[0] + off) * (c[3] - c[1] + off) - inter;
      if (inter / u > thr) gone[j] = true;
    }
  }
  return keep;
}

struct RefFace {
  double box[4], score, lm[10];
};
std::vector<RefFace> read_reference(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string s = ss.str();
  std::vector<RefFace> out;
  auto numbers = [&](size_t at, int n, double* dst) {
    const char* p = s.c_str() + at;
    for (int i = 0; i < n; ++i) {
      while (*p && !(std::isdigit(static_cast<unsigned char>(*p)) || *p == '-')) ++p;
      char* end = nullptr;
      dst[i] = std::strtod(p, &end);
      p = end;
    }
  };
  for (size_t at = s.find("\"box\""); at != std::string::npos; at = s.find("\"box\"", at + 1)) {
    RefFace r;
    numbers(at + 5, 4, r.box);
    numbers(s.find("\"score\"", at) + 7, 1, &r.score);
    numbers(s.find("\"landmarks\"", at) + 11, 10, r.lm);
    out.push_back(r);
  }
  return out;
}

double iou(const double* a, const vision::Face& f) {
  const double iw = std::max(0.0, std::min(a[2], double(f.x2)) - std::max(a[0], double(f.x1)));
  const double ih = std::max(0.0, std::min(a[3], double(f.y2)) - std::max(a[1], double(f.y1)));
  const double u = (a[2] - a[0]) * (a[3] - a[1]) + double(f.x2 - f.x1) * double(f.y2 - f.y1) - iw * ih;
  return iw * ih / u;
}

}  // namespace

TEST_SUITE("vision") {
  TEST_CASE("prior boxes for odd sizes: count, order and values as the reference; the model agrees") {
    const int64_t H = 37, W = 53;
    Tensor p = vision::prior_boxes(H, W);
    // levels ceil(37/8)·ceil(53/8) = 5·7, 3·4, 2·2 positions, 2 sizes each
    REQUIRE(p.sizes() == Shape{(35 + 12 + 4) * 2, 4});
    auto v = p.to_vector();
    auto row = [&](int64_t r) { return std::vector<double>(v.begin() + r * 4, v.begin() + r * 4 + 4); };
    auto near = [](const std::vector<double>& a, std::vector<double> b) {
      for (size_t i = 0; i < 4; ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-6));
    };
    near(row(0), {0.5 * 8 / 53, 0.5 * 8 / 37, 16.0 / 53, 16.0 / 37});
    near(row(1), {0.5 * 8 / 53, 0.5 * 8 / 37, 32.0 / 53, 32.0 / 37});
    near(row(2), {1.5 * 8 / 53, 0.5 * 8 / 37, 16.0 / 53, 16.0 / 37});         // next column
    near(row(14), {0.5 * 8 / 53, 1.5 * 8 / 37, 16.0 / 53, 16.0 / 37});        // next row (7 columns · 2)
    near(row(70), {0.5 * 16 / 53, 0.5 * 16 / 37, 64.0 / 53, 64.0 / 37});      // level 2 starts after 70
    near(row(101), {1.5 * 32 / 53, 1.5 * 32 / 37, 512.0 / 53, 512.0 / 37});  // the last, unclipped
    Tensor clipped = vision::prior_boxes(H, W, true);
    CHECK(amax(clipped).item<double>() <= 1.0);
    // the network's anchors for the same size (random weights: only the count matters)
    nn::RetinaFace net;
    net.eval();
    NoGradGuard ng;
    auto out = net.forward_heads(zeros({1, H, W, 3}));
    CHECK(out.loc.sizes() == Shape{1, p.size(0), 4});
    CHECK(out.conf.sizes() == Shape{1, p.size(0), 2});
    CHECK(out.landm.sizes() == Shape{1, p.size(0), 10});
  }

  TEST_CASE("nms equals a brute-force greedy pass, on cpu and cuda") {
    manual_seed(11);
    for (double off : {0.0, 1.0}) {
      Tensor b = clustered_boxes();
      Tensor s = rand({150}).to(DType::f64);
      const auto want = brute_force_nms(b.to_vector(), s.to_vector(), 0.4, off);
      CHECK(want.size() < 150);  // something was suppressed
      CHECK(want.size() > 12);
      Tensor got = nms(b, s, 0.4, off);
      std::vector<double> gv = got.to_vector();
      REQUIRE(gv.size() == want.size());
      for (size_t i = 0; i < want.size(); ++i) CHECK(int64_t(gv[i]) == want[i]);
      if (cuda_is_available()) {
        Tensor gc = nms(b.to(kCUDA), s.to(kCUDA), 0.4, off);
        CHECK(gc.device().is_cuda());
        CHECK(gc.to(kCPU).to_vector() == gv);
        CHECK(nms(b.to(kCUDA).to(DType::f32), s.to(kCUDA), 0.4, off).to(kCPU).to_vector() == gv);
      }
    }
    CHECK(nms(zeros({0, 4}), zeros({0}), 0.5).numel() == 0);
    CHECK_THROWS_WITH_AS(nms(zeros({3, 5}), zeros({3}), 0.5), doctest::Contains("nms: boxes must be (N, 4)"),
                         Error);
  }

  TEST_CASE("similarity transform: a known similarity is recovered; least squares under noise") {
    const double s = 1.7, t = 0.4, tx = 3, ty = -2;
    double src[10] = {10, 20, 35, 18, 22, 40, 12, 55, 33, 57}, dst[10];
    for (int i = 0; i < 5; ++i) {
      dst[2 * i] = s * (std::cos(t) * src[2 * i] - std::sin(t) * src[2 * i + 1]) + tx;
      dst[2 * i + 1] = s * (std::sin(t) * src[2 * i] + std::cos(t) * src[2 * i + 1]) + ty;
    }
    vision::Affine m = vision::similarity_transform(src, dst, 5);
    const double want[6] = {s * std::cos(t), -s * std::sin(t), tx, s * std::sin(t), s * std::cos(t), ty};
    for (int i = 0; i < 6; ++i) CHECK(m[size_t(i)] == doctest::Approx(want[i]).epsilon(1e-12));
    vision::Affine inv = vision::invert_affine(m);
    for (int i = 0; i < 5; ++i) {
      CHECK(inv[0] * dst[2 * i] + inv[1] * dst[2 * i + 1] + inv[2] == doctest::Approx(src[2 * i]));
      CHECK(inv[3] * dst[2 * i] + inv[4] * dst[2 * i + 1] + inv[5] == doctest::Approx(src[2 * i + 1]));
    }
    // mirrored targets: the best rotation+scale, never a reflection (det > 0)
    double mir[10];
    for (int i = 0; i < 10; ++i) mir[i] = i % 2 ? dst[i] : -dst[i];
    vision::Affine r = vision::similarity_transform(src, mir, 5);
    CHECK(r[0] * r[4] - r[1] * r[3] >= 0);
    CHECK(r[0] == doctest::Approx(r[4]));
    CHECK(r[1] == doctest::Approx(-r[3]));
    // noisy targets: the residual is minimal (no small change of the 4 parameters lowers it)
    double noisy[10];
    for (int i = 0; i < 10; ++i) noisy[i] = dst[i] + (i % 3 - 1) * 0.8;
    vision::Affine q = vision::similarity_transform(src, noisy, 5);
    auto resid = [&](double a, double b, double c, double f) {
      double e = 0;
      for (int i = 0; i < 5; ++i) {
        const double x = a * src[2 * i] - b * src[2 * i + 1] + c - noisy[2 * i];
        const double y = b * src[2 * i] + a * src[2 * i + 1] + f - noisy[2 * i + 1];
        e += x * x + y * y;
      }
      return e;
    };
    const double e0 = resid(q[0], q[3], q[2], q[5]);
    for (double d : {1e-3, -1e-3}) {
      CHECK(resid(q[0] + d, q[3], q[2], q[5]) > e0);
      CHECK(resid(q[0], q[3] + d, q[2], q[5]) > e0);
      CHECK(resid(q[0], q[3], q[2] + d, q[5]) > e0);
      CHECK(resid(q[0], q[3], q[2], q[5] + d) > e0);
    }
    const double same[4] = {1, 1, 1, 1};
    CHECK_THROWS_WITH_AS(vision::similarity_transform(same, same, 2), doctest::Contains("coincide"), Error);
  }

  TEST_CASE("warp_affine: identity and integer shifts are exact, outside reads 0; the face template") {
    manual_seed(3);
    Tensor x = randn({1, 6, 7, 2}, DType::f64);
    Tensor id = from_vector(std::vector<double>{1, 0, 0, 0, 1, 0}, {1, 2, 3}, DType::f64);
    for (InterpMode mode : {InterpMode::bicubic, InterpMode::bilinear, InterpMode::nearest})
      CHECK(max_abs_diff(warp_affine(x, id, 6, 7, mode), x) == 0.0);
    // output (ox, oy) reads input (ox + 2, oy - 1): row 0 is outside (0), the rest shifted
    Tensor sh = from_vector(std::vector<double>{1, 0, 2, 0, 1, -1}, {1, 2, 3}, DType::f64);
    Tensor y = warp_affine(x, sh, 6, 7);
    CHECK(max_abs_diff(y.slice(1, 1, 6).slice(2, 0, 5), x.slice(1, 0, 5).slice(2, 2, 7)) == 0.0);
    CHECK(amax(abs(y.slice(1, 0, 1))).item<double>() == 0.0);
    CHECK(amax(abs(y.slice(2, 5, 7))).item<double>() == 0.0);
    // half-pixel shift, bilinear: the mean of two neighbours
    Tensor half = from_vector(std::vector<double>{1, 0, 0.5, 0, 1, 0}, {1, 2, 3}, DType::f64);
    Tensor hb = warp_affine(x, half, 6, 6, InterpMode::bilinear);
    CHECK(max_abs_diff(hb, mul(add(x.slice(2, 0, 6), x.slice(2, 1, 7)), 0.5)) < 1e-12);
    auto t = vision::face_template(112, 1.0);
    CHECK(t[0] == doctest::Approx(38.2946));
    auto t2 = vision::face_template(48, 1.3);  // shrunk about the centre: eyes closer together
    CHECK(t2[2] - t2[0] == doctest::Approx((73.5318 - 38.2946) * 48 / 112 / 1.3));
    CHECK_THROWS_WITH_AS(warp_affine(cat({x, x}, 0), warp_matrices(3), 4, 4),
                         doctest::Contains("warp_affine: input f64[2, 6, 7, 2] cpu has 2 images for 3 matrices"), Error);
  }

  TEST_CASE("RetinaFace on crowd.jpg matches the PyTorch reference") {
    const std::string dir = retinaface_dir();
    if (!fs::exists(dir + "/mobilenet0.25.safetensors") || !fs::exists(dir + "/crowd.jpg"))
      ADNN_SKIP("RetinaFace weights or crowd.jpg not found at " << dir);
    auto net = nn::load_retinaface(dir + "/mobilenet0.25.safetensors");
    const data::Image img = data::read_image(dir + "/crowd.jpg", 3);
    const auto faces = vision::detect_faces(*net, img);
    std::vector<RefFace> ref;
    for (auto& r : read_reference(std::string(ADNN_SOURCE_DIR) + "/tests/fixtures/retinaface_crowd_reference.json"))
      if (r.score >= 0.6) ref.push_back(r);
    REQUIRE(ref.size() == 26);
    CHECK(faces.size() == ref.size());
    for (const RefFace& r : ref) {
      size_t best = 0;
      double bi = -1;
      for (size_t i = 0; i < faces.size(); ++i)
        if (iou(r.box, faces[i]) > bi) {
          bi = iou(r.box, faces[i]);
          best = i;
        }
      INFO("reference face at " << r.box[0] << ", " << r.box[1] << " score " << r.score);
      REQUIRE(bi >= 0.95);
      double worst = 0;
      for (int k = 0; k < 10; ++k) worst = std::max(worst, std::fabs(double(faces[best].landmarks[size_t(k)]) - r.lm[k]));
      CHECK(worst <= 1.5);
      CHECK(faces[best].score == doctest::Approx(r.score).epsilon(0.02));
    }
    // the aligned crops: one per face, finite
    Tensor crops = vision::align_faces(data::to_tensor(img), faces, 48);
    CHECK(crops.sizes() == Shape{int64_t(faces.size()), 48, 48, 3});
    CHECK(std::isfinite(sum(crops).item<double>()));
  }

  TEST_CASE("RetinaFace loads strictly: a missing or misshapen tensor is an error naming it") {
    const std::string dir = retinaface_dir();
    if (!fs::exists(dir + "/mobilenet0.25.safetensors")) ADNN_SKIP("RetinaFace weights not found at " << dir);
    auto sd = io::load_safetensors(dir + "/mobilenet0.25.safetensors").tensors;
    REQUIRE(sd.size() == 300);
    nn::RetinaFace net;
    CHECK(net.state_dict().size() == 300);
    auto missing = sd;
    missing.erase(missing.begin() + 7);
    CHECK_THROWS_WITH_AS(nn::load_pytorch_state_dict(net, missing, true), doctest::Contains("missing"), Error);
    auto bad = sd;
    for (auto& [n, t] : bad)
      if (n == "ssh2.conv5X5_2.0.weight") t = zeros({16, 16, 5, 5});
    CHECK_THROWS_WITH_AS(nn::load_pytorch_state_dict(net, bad, true), doctest::Contains("ssh2.conv5X5_2.0.weight"),
                         Error);
  }

  TEST_CASE("no face gives an empty result; an oversized image a clear error") {
    const std::string dir = retinaface_dir();
    if (!fs::exists(dir + "/mobilenet0.25.safetensors")) ADNN_SKIP("RetinaFace weights not found at " << dir);
    auto net = nn::load_retinaface(dir + "/mobilenet0.25.safetensors");
    data::Image blank(120, 160, 3, 128.f);
    CHECK(vision::detect_faces(*net, blank).empty());
    data::Image huge(4097, 4097, 1, 0.f);
    CHECK_THROWS_WITH_AS(vision::detect_faces(*net, huge, {}, "huge.png"),
                         doctest::Contains("huge.png is 4097x4097"), Error);
    vision::DetectOptions o;
    o.max_side = 64;  // downscaled first: accepted
    CHECK(vision::detect_faces(*net, huge, o).empty());
  }

#ifdef ADNN_FER_BIN
  TEST_CASE("adnn-fer detect: JSON and PNG; no face is a message, a corrupt image an error exit") {
    const std::string dir = retinaface_dir();
    if (!fs::exists(dir + "/mobilenet0.25.safetensors")) ADNN_SKIP("RetinaFace weights not found at " << dir);
    const fs::path tmp = fs::temp_directory_path() / ("adnn_vision_" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    data::write_png((tmp / "blank.png").string(), data::Image(90, 120, 3, 200.f));
    std::ofstream(tmp / "broken.jpg") << "\xff\xd8\xff\xe0 not really a jpeg";
    auto run = [&](const std::string& args) {
      const std::string log = (tmp / "log.txt").string();
      const int rc = std::system((std::string(ADNN_FER_BIN) + " " + args + " > '" + log + "' 2>&1").c_str());
      std::ifstream f(log);
      std::stringstream ss;
      ss << f.rdbuf();
      return std::pair<int, std::string>{WIFEXITED(rc) ? WEXITSTATUS(rc) : 128, ss.str()};
    };
    const std::string d = " --detector '" + dir + "/mobilenet0.25.safetensors' --device cpu --out '" +
                          (tmp / "out").string() + "'";
    auto [rc, out] = run("detect '" + (tmp / "blank.png").string() + "'" + d);
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("no face found") != std::string::npos);
    CHECK(fs::exists(tmp / "out" / "blank_faces.json"));
    auto [rc2, out2] = run("detect '" + (tmp / "broken.jpg").string() + "'" + d);
    INFO(out2);
    CHECK(rc2 == 1);
    CHECK(out2.find("broken.jpg") != std::string::npos);
    fs::remove_all(tmp);
  }
#endif
}
