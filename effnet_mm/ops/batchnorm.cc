// Training-mode BatchNorm pieces for MindSpore `ops.Custom(func_type="aot")` on CPU (NCHW float32), used with the
// affine(+SiLU) kernels of elementwise.cc:
//   stats = effnet_bn_stats(x)                               -> (2, C): batch mean and biased variance
//   y     = effnet_affine[_silu](x, scale, shift)            (elementwise.cc), scale/shift from stats, gamma, beta
// and their gradients, so MindSpore's autodiff composes the exact BN(+SiLU) gradient from one-pass kernels instead
// of oneDNN's ncsp_bnorm and separate Sigmoid/Mul passes.  Per-channel sums are owned by one work item each and
// accumulated in double in a fixed order: deterministic.  Same AOT signature and conventions as fast_conv.cc.
#include <omp.h>
#include <math.h>

#include <cstdint>
#include <cstring>

int effnet_kernel_threads();  // fast_conv.cc

#if defined(__x86_64__) && defined(__GLIBC__)
extern "C" float expf(float) __attribute__((__simd__("notinbranch")));
#endif

namespace {

bool all_float32(int nparam, const char **dtypes) {
  for (int i = 0; i < nparam; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

// x must be (N, C, H, W); vectors (C) or (2, C).
bool nchw(const int *ndims, int64_t **shapes, int idx, int64_t *n, int64_t *c, int64_t *size) {
  if (ndims[idx] != 4) return false;
  *n = shapes[idx][0];
  *c = shapes[idx][1];
  *size = shapes[idx][2] * shapes[idx][3];
  return true;
}

bool is_vec(const int *ndims, int64_t **shapes, int idx, int64_t c) { return ndims[idx] == 1 && shapes[idx][0] == c; }

bool is_pair(const int *ndims, int64_t **shapes, int idx, int64_t c) {
  return ndims[idx] == 2 && shapes[idx][0] == 2 && shapes[idx][1] == c;
}

// Sum over one plane in float blocks of 1024 (vectorised), returned in double.
template <typename F>
double plane_sum(int64_t size, F term) {
  double total = 0.0;
  for (int64_t s = 0; s < size; s += 1024) {
    const int64_t e = s + 1024 < size ? s + 1024 : size;
    float part = 0.0f;
#pragma omp simd reduction(+ : part)
    for (int64_t i = s; i < e; ++i) part += term(i);
    total += part;
  }
  return total;
}

// dz = dy * act'(z) with z = x * a + b.
template <bool kSilu>
inline float act_grad(float dy, float x, float a, float b) {
  if (!kSilu) return dy;
  const float z = x * a + b;
  const float s = 1.0f / (1.0f + expf(-z));
  return dy * s * (1.0f + z * (1.0f - s));
}

// (dy, x, scale, shift) -> dx = act'(z) * dy * scale[c]  (the gradient through x at fixed scale/shift).
template <bool kSilu>
int affine_grad(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  int64_t n, c, size;
  if (nparam != 5 || !all_float32(nparam, dtypes)) return 2;
  if (!nchw(ndims, shapes, 1, &n, &c, &size) || !is_vec(ndims, shapes, 2, c) || !is_vec(ndims, shapes, 3, c))
    return 3;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  const float *scale = static_cast<const float *>(params[2]);
  const float *shift = static_cast<const float *>(params[3]);
  float *dx = static_cast<float *>(params[4]);
  const int64_t planes = n * c;
#pragma omp parallel for num_threads(effnet_kernel_threads()) schedule(dynamic, 16)
  for (int64_t p = 0; p < planes; ++p) {
    const float a = scale[p % c], b = shift[p % c];
    const float *g = dy + p * size, *v = x + p * size;
    float *out = dx + p * size;
#pragma omp simd
    for (int64_t i = 0; i < size; ++i) out[i] = act_grad<kSilu>(g[i], v[i], a, b) * a;
  }
  return 0;
}

// (dy, x, scale, shift) -> (2, C): [sum dz * x, sum dz] over N, H, W: the gradients of scale and shift.
template <bool kSilu>
int affine_grad_params(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  int64_t n, c, size;
  if (nparam != 5 || !all_float32(nparam, dtypes)) return 2;
  if (!nchw(ndims, shapes, 1, &n, &c, &size) || !is_vec(ndims, shapes, 2, c) || !is_vec(ndims, shapes, 3, c) ||
      !is_pair(ndims, shapes, 4, c))
    return 3;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  const float *scale = static_cast<const float *>(params[2]);
  const float *shift = static_cast<const float *>(params[3]);
  float *out = static_cast<float *>(params[4]);
#pragma omp parallel for num_threads(effnet_kernel_threads()) schedule(dynamic, 1)
  for (int64_t ch = 0; ch < c; ++ch) {
    const float a = scale[ch], b = shift[ch];
    double d_scale = 0.0, d_shift = 0.0;
    for (int64_t bi = 0; bi < n; ++bi) {
      const float *g = dy + (bi * c + ch) * size, *v = x + (bi * c + ch) * size;
      d_scale += plane_sum(size, [&](int64_t i) { return act_grad<kSilu>(g[i], v[i], a, b) * v[i]; });
      d_shift += plane_sum(size, [&](int64_t i) { return act_grad<kSilu>(g[i], v[i], a, b); });
    }
    out[ch] = static_cast<float>(d_scale);
    out[c + ch] = static_cast<float>(d_shift);
  }
  return 0;
}

}  // namespace

// x (N, C, H, W) -> (2, C): mean and biased variance over N, H, W (shifted by the channel's first value, in double).
extern "C" int effnet_bn_stats(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                               void *) {
  int64_t n, c, size;
  if (nparam != 2 || !all_float32(nparam, dtypes)) return 2;
  if (!nchw(ndims, shapes, 0, &n, &c, &size) || !is_pair(ndims, shapes, 1, c)) return 3;
  const float *x = static_cast<const float *>(params[0]);
  float *out = static_cast<float *>(params[1]);
  const double count = static_cast<double>(n * size);
#pragma omp parallel for num_threads(effnet_kernel_threads()) schedule(dynamic, 1)
  for (int64_t ch = 0; ch < c; ++ch) {
    const float k = n * size > 0 ? x[ch * size] : 0.0f;  // shift: avoids cancellation in E[x^2] - E[x]^2
    double s1 = 0.0, s2 = 0.0;
    for (int64_t b = 0; b < n; ++b) {
      const float *v = x + (b * c + ch) * size;
      s1 += plane_sum(size, [&](int64_t i) { return v[i] - k; });
      s2 += plane_sum(size, [&](int64_t i) { return (v[i] - k) * (v[i] - k); });
    }
    const double m = count > 0 ? s1 / count : 0.0;
    const double var = count > 0 ? s2 / count - m * m : 0.0;
    out[ch] = static_cast<float>(k + m);
    out[c + ch] = static_cast<float>(var > 0.0 ? var : 0.0);
  }
  return 0;
}

// (dstats (2, C), x, stats) -> dx = dmean / M + dvar * 2 (x - mean) / M, M = N * H * W.
extern "C" int effnet_bn_stats_grad(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                    void *, void *) {
  int64_t n, c, size;
  if (nparam != 4 || !all_float32(nparam, dtypes)) return 2;
  if (!nchw(ndims, shapes, 1, &n, &c, &size) || !is_pair(ndims, shapes, 0, c) || !is_pair(ndims, shapes, 2, c))
    return 3;
  const float *dstats = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  const float *stats = static_cast<const float *>(params[2]);
  float *dx = static_cast<float *>(params[3]);
  const float inv_count = n * size > 0 ? 1.0f / static_cast<float>(n * size) : 0.0f;
  const int64_t planes = n * c;
#pragma omp parallel for num_threads(effnet_kernel_threads()) schedule(dynamic, 16)
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t ch = p % c;
    const float mean = stats[ch], a = dstats[ch] * inv_count, b = 2.0f * dstats[c + ch] * inv_count;
    const float *v = x + p * size;
    float *out = dx + p * size;
#pragma omp simd
    for (int64_t i = 0; i < size; ++i) out[i] = a + b * (v[i] - mean);
  }
  return 0;
}

#define EFFNET_AFFINE_GRAD(name, impl, silu)                                                                     \
  extern "C" int name(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *) { \
    return impl<silu>(nparam, params, ndims, shapes, dtypes);                                                    \
  }

EFFNET_AFFINE_GRAD(effnet_affine_grad, affine_grad, false)
EFFNET_AFFINE_GRAD(effnet_affine_silu_grad, affine_grad, true)
EFFNET_AFFINE_GRAD(effnet_affine_grad_params, affine_grad_params, false)
EFFNET_AFFINE_GRAD(effnet_affine_silu_grad_params, affine_grad_params, true)
