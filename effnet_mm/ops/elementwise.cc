// Fused elementwise kernels for MindSpore `ops.Custom(func_type="aot")` on CPU: SiLU (swish), the SE channel
// scale and the SE sigmoid gate, forward and backward.  MindSpore's CPU graph runs SiLU as Sigmoid + Mul (and its
// gradient as several more passes), and the gradient of a (N, C, H, W) x (N, C, 1, 1) product through a slow
// ReduceSum over (H, W); each of these is one streaming pass here.  MindSpore's CPU Sigmoid is also a low-precision
// approximation (~8e-7 abs error), which dominated the converted-TF logits error; the SE gate computes it here.
// Same AOT signature and conventions as fast_conv.cc.
#include <omp.h>

#include <math.h>
#include <cstdint>
#include <cstring>

int effnet_kernel_threads();  // fast_conv.cc

// glibc only declares its vector expf variants (libmvec) under -ffast-math, which would also let GCC reassociate the
// reductions of the other kernels; declaring the SIMD variant here vectorises expf alone (libmvec: <= 4 ulp).
#if defined(__x86_64__) && defined(__GLIBC__)
extern "C" float expf(float) __attribute__((__simd__("notinbranch")));
#endif

namespace {

constexpr int64_t kBlock = 16384;  // elements per work item of the flat kernels

bool all_float32(int nparam, const char **dtypes) {
  for (int i = 0; i < nparam; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

int64_t numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

// (N, C, H, W) tensor and its (N, C, 1, 1) per-channel factor.
bool channel_shapes(const int *ndims, int64_t **shapes, int x_idx, int g_idx, int64_t *planes, int64_t *size) {
  const int64_t *xs = shapes[x_idx], *gs = shapes[g_idx];
  if (ndims[x_idx] != 4 || ndims[g_idx] != 4) return false;
  if (gs[0] != xs[0] || gs[1] != xs[1] || gs[2] != 1 || gs[3] != 1) return false;
  *planes = xs[0] * xs[1];
  *size = xs[2] * xs[3];
  return true;
}

// Float32 sigmoid to ~2 ulp: always exp of a non-positive argument (no overflow), and for x < 0 the form e / (1 + e)
// keeps the *relative* error small in the far negative tail, where 1 / (1 + exp(-x)) would round through a huge
// exp.  Called once per (N, C) plane outside any `omp simd` loop, so it uses glibc's scalar expf (< 1 ulp), not the
// 4-ulp libmvec variant the SiLU loops vectorise with.
inline float sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}

// sigmoid'(x) = s * (1 - s) = e / (1 + e)^2 with e = exp(-|x|), in double: s * (1 - s) from a float s would be
// 0 for x >~ 17 (s rounds to 1) although the true derivative is ~e; the form in e has no cancellation.
inline double sigmoid_derivative(float x) {
  const double e = exp(-fabs(static_cast<double>(x)));
  return e / ((1.0 + e) * (1.0 + e));
}

// x * g or, with kSigmoid, x * sigmoid(g) for x (N, C, H, W) and g (N, C, 1, 1).
template <bool kSigmoid>
int channel_scale(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  int64_t planes, size;
  if (nparam != 3 || !all_float32(nparam, dtypes)) return 2;
  if (!channel_shapes(ndims, shapes, 0, 1, &planes, &size)) return 3;
  const float *x = static_cast<const float *>(params[0]);
  const float *g = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
#pragma omp parallel for num_threads(effnet_kernel_threads()) schedule(dynamic, 16)
  for (int64_t p = 0; p < planes; ++p) {
    const float v = kSigmoid ? sigmoid(g[p]) : g[p];
    const float *src = x + p * size;
    float *dst = y + p * size;
#pragma omp simd
    for (int64_t i = 0; i < size; ++i) dst[i] = src[i] * v;
  }
  return 0;
}

// (dy, x, g) -> dg = sum over (H, W) of dy * x, times sigmoid'(g) with kSigmoid; shape (N, C, 1, 1).
// One plane per work item (deterministic), float partial sums of 1024 elements accumulated in double.
template <bool kSigmoid>
int channel_scale_grad_g(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  int64_t planes, size;
  if (nparam != 4 || !all_float32(nparam, dtypes)) return 2;
  if (!channel_shapes(ndims, shapes, 1, 3, &planes, &size)) return 3;
  if (!channel_shapes(ndims, shapes, 1, 2, &planes, &size)) return 3;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  const float *g = static_cast<const float *>(params[2]);
  float *dg = static_cast<float *>(params[3]);
#pragma omp parallel for num_threads(effnet_kernel_threads()) schedule(dynamic, 16)
  for (int64_t p = 0; p < planes; ++p) {
    const float *a = dy + p * size, *b = x + p * size;
    double total = 0.0;
    for (int64_t s = 0; s < size; s += 1024) {
      const int64_t e = s + 1024 < size ? s + 1024 : size;
      float part = 0.0f;
#pragma omp simd reduction(+ : part)
      for (int64_t i = s; i < e; ++i) part += a[i] * b[i];
      total += part;
    }
    if (kSigmoid) total *= sigmoid_derivative(g[p]);
    dg[p] = static_cast<float>(total);
  }
  return 0;
}

}  // namespace

// x -> x * sigmoid(x), any shape.
extern "C" int effnet_silu(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                           void *) {
  if (nparam != 2 || !all_float32(nparam, dtypes)) return 2;
  const int64_t n = numel(ndims[0], shapes[0]);
  if (n != numel(ndims[1], shapes[1])) return 3;
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[1]);
#pragma omp parallel for num_threads(effnet_kernel_threads()) schedule(dynamic, 1)
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = b + kBlock < n ? b + kBlock : n;
#pragma omp simd
    for (int64_t i = b; i < e; ++i) y[i] = x[i] / (1.0f + expf(-x[i]));
  }
  return 0;
}

// (dy, x) -> dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x).
extern "C" int effnet_silu_grad(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                void *, void *) {
  if (nparam != 3 || !all_float32(nparam, dtypes)) return 2;
  const int64_t n = numel(ndims[0], shapes[0]);
  if (n != numel(ndims[1], shapes[1]) || n != numel(ndims[2], shapes[2])) return 3;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[2]);
#pragma omp parallel for num_threads(effnet_kernel_threads()) schedule(dynamic, 1)
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = b + kBlock < n ? b + kBlock : n;
#pragma omp simd
    for (int64_t i = b; i < e; ++i) {
      const float s = 1.0f / (1.0f + expf(-x[i]));
      dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
  }
  return 0;
}

// (x (N, C, H, W), g (N, C, 1, 1)) -> x * g.
extern "C" int effnet_channel_scale(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                    void *, void *) {
  return channel_scale<false>(nparam, params, ndims, shapes, dtypes);
}

// (dy, x, g) -> dg = sum over (H, W) of dy * x.
extern "C" int effnet_channel_scale_grad_g(int nparam, void **params, int *ndims, int64_t **shapes,
                                           const char **dtypes, void *, void *) {
  return channel_scale_grad_g<false>(nparam, params, ndims, shapes, dtypes);
}

// SE gate (x (N, C, H, W), s (N, C, 1, 1)) -> x * sigmoid(s); also dx = dy * sigmoid(s) in the backward.
extern "C" int effnet_sigmoid_gate(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                   void *, void *) {
  return channel_scale<true>(nparam, params, ndims, shapes, dtypes);
}

// (dy, x, s) -> ds = sum over (H, W) of dy * x, times sigmoid'(s) = sigmoid(s) * (1 - sigmoid(s)).
extern "C" int effnet_sigmoid_gate_grad_s(int nparam, void **params, int *ndims, int64_t **shapes,
                                          const char **dtypes, void *, void *) {
  return channel_scale_grad_g<true>(nparam, params, ndims, shapes, dtypes);
}

// Inference BatchNorm (+ SiLU): (x (N, C, H, W), scale (C), shift (C)) -> act(x * scale[c] + shift[c]) in one pass,
// where scale = gamma / sqrt(var + eps) and shift = beta - mean * scale come from the moving statistics.
template <bool kSilu>
int affine_act(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 4 || !all_float32(nparam, dtypes)) return 2;
  if (ndims[0] != 4 || ndims[1] != 1 || ndims[2] != 1) return 3;
  const int64_t *xs = shapes[0];
  const int64_t c = xs[1], planes = xs[0] * xs[1], size = xs[2] * xs[3];
  if (shapes[1][0] != c || shapes[2][0] != c || numel(ndims[3], shapes[3]) != planes * size) return 3;
  const float *x = static_cast<const float *>(params[0]);
  const float *scale = static_cast<const float *>(params[1]);
  const float *shift = static_cast<const float *>(params[2]);
  float *y = static_cast<float *>(params[3]);
#pragma omp parallel for num_threads(effnet_kernel_threads()) schedule(dynamic, 16)
  for (int64_t p = 0; p < planes; ++p) {
    const float a = scale[p % c], b = shift[p % c];
    const float *src = x + p * size;
    float *dst = y + p * size;
#pragma omp simd
    for (int64_t i = 0; i < size; ++i) {
      const float z = src[i] * a + b;
      dst[i] = kSilu ? z / (1.0f + expf(-z)) : z;
    }
  }
  return 0;
}

extern "C" int effnet_affine_silu(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                  void *, void *) {
  return affine_act<true>(nparam, params, ndims, shapes, dtypes);
}

extern "C" int effnet_affine(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                             void *) {
  return affine_act<false>(nparam, params, ndims, shapes, dtypes);
}
