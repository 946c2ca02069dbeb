// Spatial mean of NCHW float32 (the squeeze of squeeze-and-excitation) and its gradient, for MindSpore
// `ops.Custom(func_type="aot")` on CPU.  MindSpore's ReduceMean over axes (2, 3) runs ~15x slower than memory speed
// on CPU; these are single streaming passes.  Conventions: kernels.h.
#include "kernels.h"

namespace {

using effnet::all_float32;
using effnet::kBadArgs;
using effnet::kBadDtype;
using effnet::kBadShape;
using effnet::kOk;
using effnet::threads_for;

bool all_4d(int nparam, const int *ndims) {
  for (int i = 0; i < nparam; ++i) {
    if (ndims[i] != 4) return false;
  }
  return true;
}

// x (N, C, H, W) -> y (N, C, 1, 1).  Each plane is summed by one thread: deterministic.
int spatial_mean(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 2 || !all_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *xs = shapes[0], *ys = shapes[1];
  if (ys[0] != xs[0] || ys[1] != xs[1] || ys[2] != 1 || ys[3] != 1) return kBadShape;
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[1]);
  const int64_t planes = xs[0] * xs[1], size = xs[2] * xs[3];
  effnet::parallel_for(planes, 16, threads_for(planes * size), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] = effnet::plane_mean(x + i * size, size);
  });
  return kOk;
}

// dy (N, C, 1, 1), x (shape only) -> dx (N, C, H, W) = dy / (H * W) everywhere.
int spatial_mean_grad(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 3 || !all_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *ys = shapes[0], *xs = shapes[2];
  if (ys[0] != xs[0] || ys[1] != xs[1] || ys[2] != 1 || ys[3] != 1) return kBadShape;
  const float *dy = static_cast<const float *>(params[0]);
  float *dx = static_cast<float *>(params[2]);
  const int64_t planes = xs[0] * xs[1], size = xs[2] * xs[3];
  const float scale = size > 0 ? 1.0f / static_cast<float>(size) : 0.0f;
  effnet::parallel_for(planes, 16, threads_for(planes * size), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float v = dy[i] * scale;
      float *p = dx + i * size;
#pragma omp simd
      for (int64_t j = 0; j < size; ++j) p[j] = v;
    }
  });
  return kOk;
}

}  // namespace

EFFNET_KERNEL(effnet_spatial_mean, spatial_mean(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_spatial_mean_grad, spatial_mean_grad(nparam, params, ndims, shapes, dtypes))
