// Spatial mean of NCHW float32 (the squeeze of squeeze-and-excitation) and its gradient, for MindSpore
// `ops.Custom(func_type="aot")` on CPU.  MindSpore's ReduceMean over axes (2, 3) runs ~15x slower than memory speed
// on CPU; these are single streaming passes.  Same AOT signature and conventions as fast_conv.cc.
#include <omp.h>

#include <cstdint>
#include <cstring>

int effnet_kernel_threads();  // fast_conv.cc

namespace {

bool float32_4d(int nparam, const int *ndims, const char **dtypes) {
  for (int i = 0; i < nparam; ++i) {
    if (ndims[i] != 4 || std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

}  // namespace

// x (N, C, H, W) -> y (N, C, 1, 1).  Each plane is summed by one thread: deterministic.
extern "C" int effnet_spatial_mean(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                   void *, void *) {
  if (nparam != 2 || !float32_4d(nparam, ndims, dtypes)) return 2;
  const int64_t *xs = shapes[0], *ys = shapes[1];
  if (ys[0] != xs[0] || ys[1] != xs[1] || ys[2] != 1 || ys[3] != 1) return 3;
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[1]);
  const int64_t planes = xs[0] * xs[1], size = xs[2] * xs[3];
  const double scale = size > 0 ? 1.0 / static_cast<double>(size) : 0.0;
#pragma omp parallel for num_threads(effnet_kernel_threads()) schedule(dynamic, 16)
  for (int64_t i = 0; i < planes; ++i) {
    const float *p = x + i * size;
    double total = 0.0;
    // Float partial sums of 1024 elements (vectorised), accumulated in double across blocks.
    for (int64_t b = 0; b < size; b += 1024) {
      const int64_t e = b + 1024 < size ? b + 1024 : size;
      float part = 0.0f;
#pragma omp simd reduction(+ : part)
      for (int64_t j = b; j < e; ++j) part += p[j];
      total += part;
    }
    y[i] = static_cast<float>(total * scale);
  }
  return 0;
}

// dy (N, C, 1, 1), x (shape only) -> dx (N, C, H, W) = dy / (H * W) everywhere.
extern "C" int effnet_spatial_mean_grad(int nparam, void **params, int *ndims, int64_t **shapes,
                                        const char **dtypes, void *, void *) {
  if (nparam != 3 || !float32_4d(nparam, ndims, dtypes)) return 2;
  const int64_t *ys = shapes[0], *xs = shapes[2];
  if (ys[0] != xs[0] || ys[1] != xs[1] || ys[2] != 1 || ys[3] != 1) return 3;
  const float *dy = static_cast<const float *>(params[0]);
  float *dx = static_cast<float *>(params[2]);
  const int64_t planes = xs[0] * xs[1], size = xs[2] * xs[3];
  const float scale = size > 0 ? 1.0f / static_cast<float>(size) : 0.0f;
#pragma omp parallel for num_threads(effnet_kernel_threads()) schedule(dynamic, 16)
  for (int64_t i = 0; i < planes; ++i) {
    const float v = dy[i] * scale;
    float *p = dx + i * size;
#pragma omp simd
    for (int64_t j = 0; j < size; ++j) p[j] = v;
  }
  return 0;
}
