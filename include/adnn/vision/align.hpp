#pragma once
// Face alignment: a similarity transform from the five detected landmarks to a canonical
// five-point template, the paper's ×1.3 margin, and a bicubic warp (adnn::warp_affine).
#include <adnn/vision/detect.hpp>

#include <array>
#include <vector>

namespace adnn::vision {

// 2×3 affine matrix [a b c; d e f]: (x, y) -> (a x + b y + c, d x + e y + f).
using Affine = std::array<double, 6>;

// The least-squares similarity (rotation, uniform scale, translation; no reflection) taking
// src[i] to dst[i], n points as (x, y) pairs, n >= 2: Umeyama's solution, which in 2-D has
// the closed form dst ≈ α·src + β over complex numbers, α = Σ conj(s̃)·d̃ / Σ |s̃|² with s̃, d̃
// the centred points. Degenerate input (all src points equal) is an error.
Affine similarity_transform(const double* src, const double* dst, int n);
Affine invert_affine(const Affine& m);

// The ArcFace five-point template (112 × 112 crop), scaled to size × size and shrunk about
// the centre by `margin` (1.3: the face spans 1/1.3 of the crop, the paper's expansion).
std::array<double, 10> face_template(int64_t size, double margin = 1.3);

// The crops (F, size, size, C) of every face of img (H, W, C) (one image as a tensor, any
// device; pixels unchanged), warped by the inverse of the similarity from its landmarks to
// face_template(size, margin). Empty faces give (0, size, size, C).
Tensor align_faces(const Tensor& img, const std::vector<Face>& faces, int64_t size, double margin = 1.3,
                   InterpMode mode = InterpMode::bicubic);

}  // namespace adnn::vision
