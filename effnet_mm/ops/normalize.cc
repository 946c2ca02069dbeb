// Input normalisation of an image batch for MindSpore `ops.Custom(func_type="aot")` on CPU:
//   y[n][c] = (x[n][src(c)] - mean[c]) / std[c],  src(c) = C - 1 - c with `_flip` (BGR -> RGB), else c,
// for x (N, C, H, W) uint8 or float32 and y float32.  MindSpore's CPU graph ran this as Cast, ReverseV2, Sub and Div:
// ~60 ms per 224 px batch of 32 (ReverseV2 alone ~45 ms), where one streaming pass takes a few.  Conventions:
// kernels.h.
#include <cstring>

#include "kernels.h"

namespace {

using effnet::kBadArgs;
using effnet::kBadDtype;
using effnet::kBadShape;
using effnet::kOk;
using effnet::threads_for;

template <typename T, bool kFlip>
void normalize_planes(const T *x, const float *mean, const float *std_dev, int64_t n, int64_t c, int64_t size,
                      float *y) {
  effnet::parallel_for(n * c, 1, threads_for(2 * n * c * size), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t ch = p % c, src = kFlip ? c - 1 - ch : ch;
      const T *in = x + (p - ch + src) * size;
      float *out = y + p * size;
      const float m = mean[ch], s = std_dev[ch];
#pragma omp simd
      for (int64_t i = 0; i < size; ++i) out[i] = (static_cast<float>(in[i]) - m) / s;
    }
  });
}

// Inputs x (N, C, H, W) uint8 or float32, mean_std (2, C) float32 ([mean; std]); output y (N, C, H, W) float32.
template <bool kFlip>
int normalize(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 3 || ndims[0] != 4 || ndims[1] != 2 || ndims[2] != 4) return kBadArgs;
  const bool is_uint8 = std::strcmp(dtypes[0], "uint8") == 0;
  if ((!is_uint8 && std::strcmp(dtypes[0], "float32") != 0) || std::strcmp(dtypes[1], "float32") != 0 ||
      std::strcmp(dtypes[2], "float32") != 0)
    return kBadDtype;
  const int64_t *xs = shapes[0], *ms = shapes[1], *ys = shapes[2];
  const int64_t n = xs[0], c = xs[1], size = xs[2] * xs[3];
  if (ms[0] != 2 || ms[1] != c || ys[0] != n || ys[1] != c || ys[2] != xs[2] || ys[3] != xs[3]) return kBadShape;
  const float *mean = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  if (is_uint8) {
    normalize_planes<uint8_t, kFlip>(static_cast<const uint8_t *>(params[0]), mean, mean + c, n, c, size, y);
  } else {
    normalize_planes<float, kFlip>(static_cast<const float *>(params[0]), mean, mean + c, n, c, size, y);
  }
  return kOk;
}

}  // namespace

EFFNET_KERNEL(effnet_normalize, normalize<false>(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_normalize_flip, normalize<true>(nparam, params, ndims, shapes, dtypes))
