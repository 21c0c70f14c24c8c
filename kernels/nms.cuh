#pragma once
// Greedy non-maximum suppression, the bitmask scheme (as torchvision's CUDA nms).
//
// Boxes (N, 4) contiguous (x1, y1, x2, y2), already sorted by descending score. The boxes
// are cut into column blocks of common::kNmsBlock (64). Block (cx, ry) of the grid loads the
// 64 boxes of column block cx into shared memory; its thread t takes box i = 64·ry + t and
// writes one 64-bit word: bit j set when box 64·cx + j comes after i and overlaps it with
// IoU > thr (common::box_iou). Blocks with ry > cx have nothing to do (only later boxes are
// compared) and return. mask is (N, ceil(N / 64)) words; the launcher copies it to the host
// and reduces it serially in score order (a box is kept unless a kept box's word has its
// bit), as torchvision does.
// Threads: 64 per block, grid (col_blocks, col_blocks). One barrier (the shared boxes).
// Cost: N²/2 IoUs, N·col_blocks·8 bytes of mask written, then copied to the host.
#include "common.cuh"
#include "common/nms.hpp"

namespace adnn::kernels {

template <class T>
__global__ void nms_mask_kernel(const T* __restrict__ boxes, int64_t n, T thr, T offset, int64_t* __restrict__ mask,
                                int64_t col_blocks) {
  constexpr int B = common::kNmsBlock;
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (row_block > col_block) return;  // the whole block: no barrier is skipped by part of it
  const int64_t row_size = n - row_block * B < B ? n - row_block * B : B;
  const int64_t col_size = n - col_block * B < B ? n - col_block * B : B;
  ADNN_SHARED(T, sbox, [B * 4]);
  const int t = int(threadIdx.x);
  if (t < col_size)
    for (int k = 0; k < 4; ++k) sbox[t * 4 + k] = boxes[(col_block * B + t) * 4 + k];
  __syncthreads();
  if (t < row_size) {
    const int64_t i = row_block * B + t;
    const T* a = boxes + i * 4;
    unsigned long long bits = 0;
    for (int64_t j = row_block == col_block ? t + 1 : 0; j < col_size; ++j) {
      const T b[4] = {sbox[j * 4], sbox[j * 4 + 1], sbox[j * 4 + 2], sbox[j * 4 + 3]};  // shared -> registers
      if (common::box_iou(a, b, offset) > thr) bits |= 1ULL << j;
    }
    mask[i * col_blocks + col_block] = int64_t(bits);
  }
}

}  // namespace adnn::kernels
