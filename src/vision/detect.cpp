// Face detection (include/adnn/vision/detect.hpp): Pytorch_Retinaface's post-processing on
// adnn tensors; NMS is the adnn::nms op (cpu or cuda).
#include <adnn/vision/detect.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace adnn::vision {

namespace {
struct Level {
  int64_t step, size0, size1;
};
constexpr Level kLevels[3] = {{8, 16, 32}, {16, 64, 128}, {32, 256, 512}};
constexpr float kVar0 = 0.1f, kVar1 = 0.2f;
}  // namespace

Tensor prior_boxes(int64_t height, int64_t width, bool clip) {
  ADNN_CHECK(height > 0 && width > 0, "prior_boxes: image size ", height, "x", width, " must be positive");
  std::vector<float> v;
  for (const Level& l : kLevels) {
    const int64_t fh = (height + l.step - 1) / l.step, fw = (width + l.step - 1) / l.step;
    for (int64_t i = 0; i < fh; ++i)
      for (int64_t j = 0; j < fw; ++j)
        for (int64_t s : {l.size0, l.size1}) {
          float r[4] = {float((double(j) + 0.5) * double(l.step) / double(width)),
                        float((double(i) + 0.5) * double(l.step) / double(height)), float(double(s) / double(width)),
                        float(double(s) / double(height))};
          for (float x : r) v.push_back(clip ? std::clamp(x, 0.f, 1.f) : x);
        }
  }
  const int64_t p = int64_t(v.size() / 4);
  Tensor t = empty({p, 4}, DType::f32);
  std::copy(v.begin(), v.end(), t.data_ptr<float>());
  return t;
}

std::vector<Face> decode_detections(const nn::RetinaFaceOutput& out, int64_t height, int64_t width, double sx,
                                    double sy, const DetectOptions& o, Device nms_device) {
  const Tensor pri = prior_boxes(height, width);
  const int64_t A = pri.size(0);
  auto host = [&](const Tensor& t, int64_t k, const char* what) {
    Tensor h = t.detach().to(kCPU).to(DType::f32).contiguous();
    ADNN_CHECK(h.numel() == A * k, "decode_detections: ", what, " ", t.desc(), " does not hold ", A, "x", k,
               " values for the ", A, " priors of a ", height, "x", width, " input");
    return h;
  };
  const Tensor loc = host(out.loc, 4, "loc"), conf = host(out.conf, 2, "conf"), landm = host(out.landm, 10, "landm");
  const float* L = loc.data_ptr<float>();
  const float* C = conf.data_ptr<float>();
  const float* M = landm.data_ptr<float>();
  const float* P = pri.data_ptr<float>();
  const float W = float(width), H = float(height);
  // candidates above the floor, best first (stable: equal scores keep the anchor order)
  std::vector<int64_t> cand;
  for (int64_t a = 0; a < A; ++a)
    if (C[a * 2 + 1] > o.confidence_floor) cand.push_back(a);
  std::stable_sort(cand.begin(), cand.end(), [&](int64_t a, int64_t b) { return C[a * 2 + 1] > C[b * 2 + 1]; });
  if (o.top_k >= 0 && int64_t(cand.size()) > o.top_k) cand.resize(size_t(o.top_k));
  const int64_t n = int64_t(cand.size());
  std::vector<Face> faces(static_cast<size_t>(n));
  std::vector<float> boxes(size_t(n) * 4), scores(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    const int64_t a = cand[size_t(k)];
    const float* p = P + a * 4;
    const float* l = L + a * 4;
    // as the reference, in f32: centre = p + l·v0·p_wh, size = p_wh·exp(l·v1)
    const float cx = p[0] + l[0] * kVar0 * p[2], cy = p[1] + l[1] * kVar0 * p[3];
    const float w = p[2] * std::exp(l[2] * kVar1), h = p[3] * std::exp(l[3] * kVar1);
    const float x1 = cx - w / 2, y1 = cy - h / 2;
    const float b[4] = {x1 * W, y1 * H, (x1 + w) * W, (y1 + h) * H};
    std::copy(b, b + 4, boxes.begin() + k * 4);
    scores[size_t(k)] = C[a * 2 + 1];
    Face& f = faces[size_t(k)];
    f.score = scores[size_t(k)];
    for (int q = 0; q < 5; ++q) {
      f.landmarks[size_t(2 * q)] = (p[0] + M[a * 10 + 2 * q] * kVar0 * p[2]) * W;
      f.landmarks[size_t(2 * q + 1)] = (p[1] + M[a * 10 + 2 * q + 1] * kVar0 * p[3]) * H;
    }
  }
  std::vector<Face> result;
  if (n == 0) return result;
  Tensor bt = empty({n, 4}, DType::f32), st = empty({n}, DType::f32);
  std::copy(boxes.begin(), boxes.end(), bt.data_ptr<float>());
  std::copy(scores.begin(), scores.end(), st.data_ptr<float>());
  // the reference's py_cpu_nms: pixel-inclusive areas (+1)
  const Tensor keep = nms(bt.to(nms_device), st.to(nms_device), o.nms_iou, 1.0).to(kCPU);
  const int64_t* kp = keep.data_ptr<int64_t>();
  for (int64_t i = 0; i < keep.numel() && (o.keep_top_k < 0 || i < o.keep_top_k); ++i) {
    const int64_t k = kp[i];
    if (scores[size_t(k)] < o.threshold) continue;
    Face f = faces[size_t(k)];
    f.x1 = float(boxes[size_t(k * 4)] * sx);
    f.y1 = float(boxes[size_t(k * 4 + 1)] * sy);
    f.x2 = float(boxes[size_t(k * 4 + 2)] * sx);
    f.y2 = float(boxes[size_t(k * 4 + 3)] * sy);
    for (int q = 0; q < 5; ++q) {
      f.landmarks[size_t(2 * q)] = float(f.landmarks[size_t(2 * q)] * sx);
      f.landmarks[size_t(2 * q + 1)] = float(f.landmarks[size_t(2 * q + 1)] * sy);
    }
    result.push_back(f);
  }
  return result;
}

std::vector<Face> detect_faces(nn::RetinaFace& net, const data::Image& img, const DetectOptions& o,
                               const std::string& name) {
  ADNN_CHECK(img.channels == 1 || img.channels == 3, "detect_faces: ", name, " has ", img.channels,
             " channels (1 or 3 expected)");
  ADNN_CHECK(img.height > 0 && img.width > 0, "detect_faces: ", name, " is empty");
  // the size the network runs at, checked before anything that size is allocated
  const int64_t longest = std::max(img.height, img.width);
  const double r = o.max_side > 0 && longest > o.max_side ? double(o.max_side) / double(longest) : 1.0;
  const int rh = r < 1 ? std::max(1, int(std::lround(img.height * r))) : img.height;
  const int rw = r < 1 ? std::max(1, int(std::lround(img.width * r))) : img.width;
  const int64_t pixels = int64_t(rh) * rw;
  ADNN_CHECK(pixels <= kMaxDetectPixels, "detect_faces: ", name, " is ", img.width, "x", img.height, " (",
             double(pixels) / 1e6, " MP), over the detector's limit of ", double(kMaxDetectPixels) / 1e6,
             " MP at full resolution: give a longest-side limit (max_side, --max-side)");
  data::Image x = r < 1 ? data::resize(img, rh, rw) : img;
  if (x.channels == 1) x = data::gray_to_rgb(x);
  const int64_t H = x.height, W = x.width;
  Tensor t = empty({1, H, W, 3}, DType::f32);  // (1, H, W, 3) BGR minus the mean
  float* tp = t.data_ptr<float>();
  const float* px = x.pixels.data();
  for (int64_t i = 0; i < H * W; ++i) {
    tp[i * 3 + 0] = px[i * 3 + 2] - 104.f;
    tp[i * 3 + 1] = px[i * 3 + 1] - 117.f;
    tp[i * 3 + 2] = px[i * 3 + 0] - 123.f;
  }
  Device dev = kCPU;
  for (auto& [n, p] : net.named_parameters()) {
    dev = p.device();
    break;
  }
  NoGradGuard ng;
  nn::RetinaFaceOutput out = net.forward_heads(t.to(dev));
  nn::RetinaFaceOutput one{out.loc.select(0, 0), out.conf.select(0, 0), out.landm.select(0, 0)};
  return decode_detections(one, H, W, double(img.width) / double(W), double(img.height) / double(H), o, dev);
}

std::string faces_json(const std::vector<Face>& faces, int width, int height) {
  std::string s = "{\"width\": " + std::to_string(width) + ", \"height\": " + std::to_string(height) + ", \"faces\": [";
  char buf[64];
  auto num = [&](double v) {
    std::snprintf(buf, sizeof buf, "%.3f", v);
    return std::string(buf);
  };
  for (size_t i = 0; i < faces.size(); ++i) {
    const Face& f = faces[i];
    s += std::string(i ? ",\n  " : "\n  ") + "{\"box\": [" + num(f.x1) + ", " + num(f.y1) + ", " + num(f.x2) + ", " +
         num(f.y2) + "], \"score\": " + num(f.score) + ", \"landmarks\": [";
    for (int k = 0; k < 10; ++k) s += (k ? ", " : "") + num(f.landmarks[size_t(k)]);
    s += "]}";
  }
  s += faces.empty() ? "]}\n" : "\n]}\n";
  return s;
}

data::Image draw_faces(const data::Image& img, const std::vector<Face>& faces) {
  data::Image o = img.channels == 1 ? data::gray_to_rgb(img) : img;
  auto put = [&](int x, int y, float r, float g, float b) {
    if (x < 0 || y < 0 || x >= o.width || y >= o.height) return;
    o.at(y, x, 0) = r;
    o.at(y, x, 1) = g;
    o.at(y, x, 2) = b;
  };
  const int th = std::max(1, std::max(o.width, o.height) / 500);
  const float colours[5][3] = {{255, 0, 0}, {0, 255, 255}, {255, 0, 255}, {0, 255, 0}, {0, 0, 255}};
  for (const Face& f : faces) {
    const int x1 = int(std::lround(f.x1)), y1 = int(std::lround(f.y1)), x2 = int(std::lround(f.x2)),
              y2 = int(std::lround(f.y2));
    for (int t = 0; t < th; ++t) {
      for (int x = x1; x <= x2; ++x) {
        put(x, y1 + t, 0, 255, 0);
        put(x, y2 - t, 0, 255, 0);
      }
      for (int y = y1; y <= y2; ++y) {
        put(x1 + t, y, 0, 255, 0);
        put(x2 - t, y, 0, 255, 0);
      }
    }
    for (int q = 0; q < 5; ++q) {
      const int cx = int(std::lround(f.landmarks[size_t(2 * q)])), cy = int(std::lround(f.landmarks[size_t(2 * q + 1)]));
      for (int dy = -th - 1; dy <= th + 1; ++dy)
        for (int dx = -th - 1; dx <= th + 1; ++dx)
          if (dx * dx + dy * dy <= (th + 1) * (th + 1)) put(cx + dx, cy + dy, colours[q][0], colours[q][1], colours[q][2]);
    }
  }
  return o;
}

}  // namespace adnn::vision
