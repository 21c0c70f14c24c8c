#pragma once
// Face detection with RetinaFace (nn::RetinaFace), as Pytorch_Retinaface's detect.py: prior
// boxes, box and landmark decoding, a confidence floor, top-k, NMS, top-k, a display
// threshold. docs/vision.md describes the pipeline and its measured cost.
#include <adnn/data/image.hpp>
#include <adnn/nn/retinaface.hpp>

#include <array>
#include <string>
#include <vector>

namespace adnn::vision {

// A detection in the pixel coordinates of the image given to detect_faces.
struct Face {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // box corners
  float score = 0;                        // face probability
  std::array<float, 10> landmarks{};      // (x, y) × 5: left eye, right eye, nose, mouth left, mouth right
};

struct DetectOptions {
  double confidence_floor = 0.02;  // candidates scoring at most this are dropped before NMS
  int64_t top_k = 5000;            // best candidates kept before NMS
  double nms_iou = 0.4;            // NMS overlap threshold (pixel-inclusive IoU, as the reference)
  int64_t keep_top_k = 750;        // best detections kept after NMS
  double threshold = 0.6;          // detections returned score at least this
  int64_t max_side = 0;            // > 0: images with a longer side are downscaled to it first
};

// The largest image detected at its own resolution (width × height); a larger one needs
// max_side (docs/limits.md).
inline constexpr int64_t kMaxDetectPixels = int64_t(4096) * 4096;

// Anchor sizes and steps of the MobileNet-0.25 RetinaFace: min sizes {16, 32} at stride 8,
// {64, 128} at 16, {256, 512} at 32; decoding variances 0.1 (centres) and 0.2 (sizes).
// prior_boxes: (P, 4) f32 rows (cx, cy, w, h) relative to the image size, for an input of
// height × width; each level is ceil(height / step) × ceil(width / step) positions, row by
// row, the two sizes innermost (the model's anchor order). clip clamps to [0, 1] (the
// reference's cfg leaves it off).
Tensor prior_boxes(int64_t height, int64_t width, bool clip = false);

// Decodes the model's outputs for one image (loc (A, 4), conf (A, 2) probabilities, landm
// (A, 10), on any device) against prior_boxes(height, width), scales them by (sx, sy) into
// the caller's pixels, and applies the floor, top-k, NMS (adnn::nms on `nms_device`), top-k
// and threshold of `o`. Sorted by descending score.
std::vector<Face> decode_detections(const nn::RetinaFaceOutput& out, int64_t height, int64_t width, double sx,
                                    double sy, const DetectOptions& o, Device nms_device = kCPU);

// The whole detector on an RGB (or gray) image, pixels 0..255: BGR minus (104, 117, 123),
// on the model's device. `name` labels errors (the file name).
std::vector<Face> detect_faces(nn::RetinaFace& net, const data::Image& img, const DetectOptions& o = {},
                               const std::string& name = "image");

// {"width": W, "height": H, "faces": [{"box": [x1, y1, x2, y2], "score": s, "landmarks": [...]}]}
std::string faces_json(const std::vector<Face>& faces, int width, int height);

// Draws the boxes (and landmark dots) into an RGB copy of the image.
data::Image draw_faces(const data::Image& img, const std::vector<Face>& faces);

}  // namespace adnn::vision
