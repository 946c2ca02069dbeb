// Fused elementwise kernels for MindSpore `ops.Custom(func_type="aot")` on CPU: SiLU (swish) and the SE sigmoid
// gate, forward and backward.  MindSpore's CPU graph runs SiLU as Sigmoid + Mul (and its
// gradient as several more passes), and the gradient of a (N, C, H, W) x (N, C, 1, 1) product through a slow
// ReduceSum over (H, W); each of these is one streaming pass here.  MindSpore's CPU Sigmoid is also a low-precision
// approximation (~8e-7 abs error), which dominated the converted-TF logits error; the SE gate computes it here.
// Conventions: kernels.h.
#include "kernels.h"  // also declares the vector expf (libmvec)

namespace {

using effnet::all_float32;
using effnet::kBadArgs;
using effnet::kBadDtype;
using effnet::kBadShape;
using effnet::kOk;
using effnet::numel;
using effnet::threads_for;

constexpr int64_t kBlock = 16384;  // elements per work item of the flat kernels

// (N, C, H, W) tensor and its (N, C, 1, 1) per-channel factor.
bool channel_shapes(const int *ndims, int64_t **shapes, int x_idx, int g_idx, int64_t *planes, int64_t *size) {
  const int64_t *xs = shapes[x_idx], *gs = shapes[g_idx];
  if (ndims[x_idx] != 4 || ndims[g_idx] != 4) return false;
  if (gs[0] != xs[0] || gs[1] != xs[1] || gs[2] != 1 || gs[3] != 1) return false;
  *planes = xs[0] * xs[1];
  *size = xs[2] * xs[3];
  return true;
}

// sigmoid'(x) = s * (1 - s) = e / (1 + e)^2 with e = exp(-|x|), in double: s * (1 - s) from a float s would be
// 0 for x >~ 17 (s rounds to 1) although the true derivative is ~e; the form in e has no cancellation.
inline double sigmoid_derivative(float x) {
  const double e = exp(-fabs(static_cast<double>(x)));
  return e / ((1.0 + e) * (1.0 + e));
}

// x * sigmoid(g) for x (N, C, H, W) and g (N, C, 1, 1).
int sigmoid_gate(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  int64_t planes, size;
  if (nparam != 3) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  if (!channel_shapes(ndims, shapes, 0, 1, &planes, &size)) return kBadShape;
  const float *x = static_cast<const float *>(params[0]);
  const float *g = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  effnet::parallel_for(planes, 16, threads_for(2 * planes * size), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float v = effnet::sigmoid(g[p]);
      const float *src = x + p * size;
      float *dst = y + p * size;
#pragma omp simd
      for (int64_t i = 0; i < size; ++i) dst[i] = src[i] * v;
    }
  });
  return kOk;
}

// (dy, x, g) -> dg = sum over (H, W) of dy * x, times sigmoid'(g); shape (N, C, 1, 1).
// One plane per work item (deterministic), float partial sums of 1024 elements accumulated in double.
int sigmoid_gate_grad_g(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  int64_t planes, size;
  if (nparam != 4) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  if (!channel_shapes(ndims, shapes, 1, 3, &planes, &size)) return kBadShape;
  if (!channel_shapes(ndims, shapes, 1, 2, &planes, &size)) return kBadShape;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  const float *g = static_cast<const float *>(params[2]);
  float *dg = static_cast<float *>(params[3]);
  effnet::parallel_for(planes, 16, threads_for(2 * planes * size), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float *a = dy + p * size, *b = x + p * size;
      double total = 0.0;
      for (int64_t s = 0; s < size; s += 1024) {
        const int64_t e = s + 1024 < size ? s + 1024 : size;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (int64_t i = s; i < e; ++i) part += a[i] * b[i];
        total += part;
      }
      dg[p] = static_cast<float>(total * sigmoid_derivative(g[p]));
    }
  });
  return kOk;
}

// x -> x * sigmoid(x), any shape.
int silu(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 2) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t n = numel(ndims[0], shapes[0]);
  if (n != numel(ndims[1], shapes[1])) return kBadShape;
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[1]);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  effnet::parallel_for(blocks, 1, threads_for(2 * n), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin * kBlock; b < end * kBlock && b < n; b += kBlock) {
      const int64_t e = b + kBlock < n ? b + kBlock : n;
      effnet::silu_span(x + b, e - b, 1.0f, 0.0f, y + b);
    }
  });
  return kOk;
}

// (dy, x) -> dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x).
int silu_grad(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 3) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t n = numel(ndims[0], shapes[0]);
  if (n != numel(ndims[1], shapes[1]) || n != numel(ndims[2], shapes[2])) return kBadShape;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[2]);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  effnet::parallel_for(blocks, 1, threads_for(3 * n), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin * kBlock; b < end * kBlock && b < n; b += kBlock) {
      const int64_t e = b + kBlock < n ? b + kBlock : n;
#pragma omp simd
      for (int64_t i = b; i < e; ++i) {
        const float s = 1.0f / (1.0f + expf(-x[i]));
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
      }
    }
  });
  return kOk;
}

}  // namespace

EFFNET_KERNEL(effnet_silu, silu(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_silu_grad, silu_grad(nparam, params, ndims, shapes, dtypes))
// SE gate (x (N, C, H, W), s (N, C, 1, 1)) -> x * sigmoid(s); also dx = dy * sigmoid(s) in the backward.
EFFNET_KERNEL(effnet_sigmoid_gate, sigmoid_gate(nparam, params, ndims, shapes, dtypes))
// (dy, x, s) -> ds = sum over (H, W) of dy * x, times sigmoid'(s).
EFFNET_KERNEL(effnet_sigmoid_gate_grad_s, sigmoid_gate_grad_g(nparam, params, ndims, shapes, dtypes))
