// Face alignment (include/adnn/vision/align.hpp).
#include <adnn/vision/align.hpp>

#include <cmath>

namespace adnn::vision {

Affine similarity_transform(const double* src, const double* dst, int n) {
  ADNN_CHECK(n >= 2, "similarity_transform: needs at least 2 point pairs, got ", n);
  double ms[2] = {0, 0}, md[2] = {0, 0};
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < 2; ++k) {
      ms[k] += src[2 * i + k] / n;
      md[k] += dst[2 * i + k] / n;
    }
  // α = Σ conj(s)·d / Σ |s|² over centred points (s = sx + i·sy)
  double re = 0, im = 0, ss = 0;
  for (int i = 0; i < n; ++i) {
    const double sx = src[2 * i] - ms[0], sy = src[2 * i + 1] - ms[1];
    const double dx = dst[2 * i] - md[0], dy = dst[2 * i + 1] - md[1];
    re += sx * dx + sy * dy;
    im += sx * dy - sy * dx;
    ss += sx * sx + sy * sy;
  }
  ADNN_CHECK(ss > 1e-12 && std::isfinite(ss), "similarity_transform: the source points coincide (or are not finite)");
  const double a = re / ss, b = im / ss;  // α = a + i·b: [a −b; b a]
  return {a, -b, md[0] - (a * ms[0] - b * ms[1]), b, a, md[1] - (b * ms[0] + a * ms[1])};
}

Affine invert_affine(const Affine& m) {
  const double det = m[0] * m[4] - m[1] * m[3];
  ADNN_CHECK(std::fabs(det) > 1e-300 && std::isfinite(det), "invert_affine: the matrix is singular (det ", det, ")");
  const double i0 = m[4] / det, i1 = -m[1] / det, i3 = -m[3] / det, i4 = m[0] / det;
  return {i0, i1, -(i0 * m[2] + i1 * m[5]), i3, i4, -(i3 * m[2] + i4 * m[5])};
}

std::array<double, 10> face_template(int64_t size, double margin) {
  ADNN_CHECK(size > 0 && margin > 0, "face_template: size ", size, " and margin ", margin, " must be positive");
  // ArcFace's 112 × 112 template: eyes, nose tip, mouth corners
  static constexpr double k112[10] = {38.2946, 51.6963, 73.5318, 51.5014, 56.0252,
                                      71.7366, 41.5493, 92.3655, 70.7299, 92.2041};
  std::array<double, 10> t{};
  const double s = double(size) / 112.0, c = double(size) / 2.0;
  for (int i = 0; i < 10; ++i) t[size_t(i)] = c + (k112[i] * s - c) / margin;
  return t;
}

Tensor align_faces(const Tensor& img, const std::vector<Face>& faces, int64_t size, double margin, InterpMode mode) {
  ADNN_CHECK(img.dim() == 3, "align_faces: image must be (H, W, C), got ", img.desc());
  const int64_t F = int64_t(faces.size());
  if (F == 0) return empty({0, size, size, img.size(2)}, TensorOptions(img.dtype(), img.device()));
  const std::array<double, 10> dst = face_template(size, margin);
  std::vector<double> m;
  for (const Face& f : faces) {
    double src[10];
    for (int i = 0; i < 10; ++i) src[i] = f.landmarks[size_t(i)];
    const Affine inv = invert_affine(similarity_transform(src, dst.data(), 5));  // crop -> image
    m.insert(m.end(), inv.begin(), inv.end());
  }
  return warp_affine(img.unsqueeze(0), from_vector(m, {F, 2, 3}, DType::f64), size, size, mode);
}

}  // namespace adnn::vision
