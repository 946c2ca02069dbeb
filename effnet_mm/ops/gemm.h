// Register-blocked single-thread GEMM for 1x1 convolutions on one NCHW image: y (M x P) = A (M x K) . x (K x P),
// P = H * W, with an optional per-row epilogue y * scale[m] + shift[m] + residual.  The fused MBConv inference kernel
// (conv.cc, mbconv_eval) runs its expansion and projection convs through it, one image per thread, so the expanded
// activations stay in the cache between the convs and the depthwise stage.
//
// A is packed once into kMR-row slivers (K x kMR); x is read in place, kNR columns (a panel) at a time with row
// stride P, only a partial last panel is copied (zero-padded).  The micro-kernel keeps a kMR x kNR tile in
// registers over the whole K (at the FMA peak in L1 with AVX-512: 8 x 48).  Every output element is one dot
// product summed over k in order: results do not depend on threads or on how rows are split.
//
// On small maps (7x7: 49 columns) one image's panels are mostly padding, so `columns` takes the N images of a batch
// as one matrix of N * P columns instead, each panel gathered from the images it spans (pointwise_eval in conv.cc).
#ifndef EFFNET_MM_OPS_GEMM_H_
#define EFFNET_MM_OPS_GEMM_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace effnet {
namespace gemm {

// Native vector width and the micro-tile: kMR rows x kNV vectors; kMR * kNV accumulators plus kNV loads and a
// broadcast fit the register file (32 zmm with AVX-512, 16 ymm / xmm otherwise).
#if defined(__AVX512F__)
constexpr int kLanes = 16, kMR = 8, kNV = 3;
#elif defined(__AVX__)
constexpr int kLanes = 8, kMR = 6, kNV = 2;
#else
constexpr int kLanes = 4, kMR = 6, kNV = 2;
#endif
constexpr int kNR = kLanes * kNV;

typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

inline Vec load(const float *p) {
  Vec v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline void store(float *p, Vec v) { std::memcpy(p, &v, sizeof(v)); }

// The vector of t[shift], t[shift + 1], ... (t holds kLanes floats; lanes past its end are zero).
inline Vec load_shifted(const float *t, int64_t shift) {
  float u[kLanes] = {};
  std::memcpy(u, t + shift, sizeof(float) * (kLanes - shift));
  return load(u);
}

// A (M x K, row-major) packed into ceil(M / kMR) slivers of K x kMR (rows past M zero).
inline std::vector<float> pack_a(const float *a, int64_t m, int64_t k) {
  const int64_t slivers = (m + kMR - 1) / kMR;
  std::vector<float> out(slivers * k * kMR, 0.0f);
  for (int64_t row = 0; row < m; ++row) {
    float *dst = out.data() + row / kMR * k * kMR + row % kMR;
    for (int64_t kk = 0; kk < k; ++kk) dst[kk * kMR] = a[row * k + kk];
  }
  return out;
}

// acc[r][v] = sum over k of a[k][r] * b[k][v * kLanes ...] for a packed sliver a (K x kMR) and a panel b of kNR
// columns whose rows lie b_stride floats apart.
__attribute__((always_inline)) inline void micro_kernel(int64_t k_len, const float *__restrict a,
                                                        const float *__restrict b, int64_t b_stride,
                                                        Vec (&acc)[kMR][kNV]) {
#pragma GCC unroll 16
  for (int r = 0; r < kMR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[r][v] = Vec{};
  }
  for (int64_t k = 0; k < k_len; ++k) {
    Vec bv[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) bv[v] = load(b + k * b_stride + v * kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < kMR; ++r) {
      const float av = a[k * kMR + r];
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[r][v] += av * bv[v];
    }
  }
}

// Per-row epilogue: y = acc * scale[m] + shift[m] (when scale is set) + residual[m * p + col] (when set), then SiLU
// (when silu; `columns` only).
struct Epilogue {
  const float *scale = nullptr, *shift = nullptr;
  const float *residual = nullptr;  // laid out like y
  bool silu = false;
};

// Rows [m0, m1) of y = A . x for one image, m0 a multiple of kMR; a_packed from pack_a over all M rows, x (K x P),
// y pointing at row m0 with rows p floats apart.  `panel` is scratch of K * kNR floats, `tile` of kMR * kNR.
inline void rows(const float *a_packed, int64_t k, const float *x, int64_t p, int64_t m0, int64_t m1, float *y,
                 const Epilogue &ep, float *panel, float *tile) {
  Vec acc[kMR][kNV];
  for (int64_t j = 0; j < p; j += kNR) {
    const int64_t cols = p - j < kNR ? p - j : kNR;
    const float *b = x + j;
    int64_t b_stride = p;
    if (cols < kNR) {  // the partial last panel: copied, zero-padded
      for (int64_t kk = 0; kk < k; ++kk) {
        std::memcpy(panel + kk * kNR, x + kk * p + j, sizeof(float) * cols);
        std::memset(panel + kk * kNR + cols, 0, sizeof(float) * (kNR - cols));
      }
      b = panel;
      b_stride = kNR;
    }
    for (int64_t s0 = m0; s0 < m1; s0 += kMR) {
      micro_kernel(k, a_packed + s0 / kMR * k * kMR, b, b_stride, acc);
      const int64_t count = m1 - s0 < kMR ? m1 - s0 : kMR;
      for (int64_t r = 0; r < count; ++r) {
        const int64_t m = s0 + r;
        float *dst = y + (m - m0) * p + j;
        const float *res = ep.residual != nullptr ? ep.residual + m * p + j : nullptr;
        const float sc = ep.scale != nullptr ? ep.scale[m] : 1.0f, sh = ep.scale != nullptr ? ep.shift[m] : 0.0f;
        if (cols == kNR) {
          for (int v = 0; v < kNV; ++v) {
            Vec z = ep.scale != nullptr ? acc[r][v] * sc + sh : acc[r][v];
            if (res != nullptr) z += load(res + v * kLanes);
            store(dst + v * kLanes, z);
          }
          continue;
        }
        for (int v = 0; v < kNV; ++v) store(tile + v * kLanes, acc[r][v]);
        for (int64_t i = 0; i < cols; ++i) {
          float z = ep.scale != nullptr ? tile[i] * sc + sh : tile[i];
          if (res != nullptr) z += res[i];
          dst[i] = z;
        }
      }
    }
  }
}


// ---------------------------------------------------------------------------------------------------------------
// Several images at once: x (N, K, P) as the K x (N * P) matrix of all its columns.

// Columns [j0, j0 + kNR) of that matrix (zero from column `total` on) copied into panel (K x kNR).
inline void gather_panel(const float *x, int64_t k, int64_t p, int64_t total, int64_t j0, float *panel) {
  for (int64_t c = 0; c < kNR;) {
    const int64_t j = j0 + c;
    if (j >= total) {
      for (int64_t kk = 0; kk < k; ++kk) std::memset(panel + kk * kNR + c, 0, sizeof(float) * (kNR - c));
      return;
    }
    const int64_t b = j / p, pos = j % p, run = std::min(std::min(p - pos, total - j), kNR - c);
    const float *src = x + b * k * p + pos;
    for (int64_t kk = 0; kk < k; ++kk) std::memcpy(panel + kk * kNR + c, src + kk * p, sizeof(float) * run);
    c += run;
  }
}

inline Vec silu(Vec z) {
#if defined(__AVX512F__)
  return (Vec)effnet::silu_avx512((__m512)z);
#else
  float t[kLanes];
  store(t, z);
  effnet::silu_span(t, kLanes, 1.0f, 0.0f, t);
  return load(t);
#endif
}

// The epilogue of row m on `count` consecutive outputs z (count <= kLanes) stored at dst, residual at res (laid out
// like dst); whole vectors in registers, a partial one through a copy.
inline void store_outputs(const Epilogue &ep, int64_t m, Vec z, int64_t count, const float *res, float *dst) {
  if (ep.scale != nullptr) z = z * ep.scale[m] + ep.shift[m];
  if (count == kLanes) {
    if (res != nullptr) z += load(res);
    store(dst, ep.silu ? silu(z) : z);
    return;
  }
  float t[kLanes] = {};
  if (res != nullptr) {
    std::memcpy(t, res, sizeof(float) * count);
    z += load(t);
  }
  store(t, ep.silu ? silu(z) : z);
  std::memcpy(dst, t, sizeof(float) * count);
}

// Panels [begin, end) (kNR columns each) of y (N, M, P) = A . x (N, K, P) over all N * P columns, a_packed from
// pack_a; `panel` is scratch of K * kNR floats.  A vector of outputs that spans images is stored in parts.
inline void columns(const float *a_packed, int64_t m, int64_t k, const float *x, int64_t n, int64_t p, float *y,
                    const Epilogue &ep, int64_t begin, int64_t end, float *panel) {
  const int64_t total = n * p;
  Vec acc[kMR][kNV];
  for (int64_t pi = begin; pi < end; ++pi) {
    const int64_t j0 = pi * kNR;
    gather_panel(x, k, p, total, j0, panel);
    for (int64_t s0 = 0; s0 < m; s0 += kMR) {
      micro_kernel(k, a_packed + s0 / kMR * k * kMR, panel, kNR, acc);
      const int64_t rows = std::min<int64_t>(kMR, m - s0);
      for (int v = 0; v < kNV; ++v) {
        const int64_t j = j0 + v * kLanes;
        if (j >= total) break;
        const int64_t lanes = std::min<int64_t>(kLanes, total - j);
        for (int64_t r = 0; r < rows; ++r) {
          // Lanes [done, done + count) go to image b from position pos; most vectors lie in one image.
          float t[kLanes];
          for (int64_t done = 0, count; done < lanes; done += count) {
            const int64_t b = (j + done) / p, pos = (j + done) % p, at = (b * m + s0 + r) * p + pos;
            count = std::min(lanes - done, p - pos);
            if (done == 0 && count < lanes) store(t, acc[r][v]);
            store_outputs(ep, s0 + r, done == 0 ? acc[r][v] : load_shifted(t, done), count,
                          ep.residual != nullptr ? ep.residual + at : nullptr, y + at);
          }
        }
      }
    }
  }
}

}  // namespace gemm
}  // namespace effnet

#endif  // EFFNET_MM_OPS_GEMM_H_
