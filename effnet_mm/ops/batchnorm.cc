// BatchNorm (+ SiLU) of NCHW float32 on CPU, forward and backward, in two streaming passes each way:
//   stats = effnet_bn_stats(x)                                   (2, C): batch mean and biased variance
//   y     = effnet_bn_act[_silu](x, gamma, beta, stats, eps)     act(gamma * (x - mean) / sqrt(var + eps) + beta)
// and the gradient of y, either through batch statistics (training: `stats` is a function of x, and the backward
// is the full BN formula in one pass after the per-channel sums) or through fixed statistics (eval / norm_eval).
// oneDNN's NCHW batch norm (`ncsp_bnorm`) plus separate Sigmoid/Mul passes, or an autodiff composition of an affine
// kernel and a statistics kernel, each cost several more passes over the activations and an AddN per layer.
// Per-channel sums are owned by one work item each and accumulated in double in a fixed order: deterministic.
#include <math.h>

#include "kernels.h"

#if defined(__x86_64__) && defined(__GLIBC__)
// See elementwise.cc: vectorises expf through libmvec without -ffast-math.
extern "C" float expf(float) __attribute__((__simd__("notinbranch")));
#endif

namespace {

using effnet::all_float32;
using effnet::kBadArgs;
using effnet::kBadDtype;
using effnet::kBadShape;
using effnet::kOk;
using effnet::threads_for;

// x must be (N, C, H, W).
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

// Per-channel constants of y = act(x * scale + shift): scale = gamma * rstd, shift = beta - mean * scale.
struct Channel {
  float mean, rstd, scale, shift;
};

inline Channel channel(const float *gamma, const float *beta, const float *stats, float eps, int64_t c, int64_t ch) {
  const double rstd = 1.0 / sqrt(static_cast<double>(stats[c + ch]) + static_cast<double>(eps));
  const double scale = static_cast<double>(gamma[ch]) * rstd;
  return {stats[ch], static_cast<float>(rstd), static_cast<float>(scale),
          static_cast<float>(static_cast<double>(beta[ch]) - static_cast<double>(stats[ch]) * scale)};
}

// dz = dy * act'(z) for z = x * a + b.
template <bool kSilu>
inline float act_grad(float dy, float x, float a, float b) {
  if (!kSilu) return dy;
  const float z = x * a + b;
  const float s = 1.0f / (1.0f + expf(-z));
  return dy * s * (1.0f + z * (1.0f - s));
}

// Inputs x, gamma, beta, stats (2, C), eps (1); the checks every kernel of this file shares.
struct BnArgs {
  int64_t n, c, size;
  const float *x, *gamma, *beta, *stats;
  float eps;
};

// `first` is the index of x among the params (1 for the gradients, whose first input is dy).
int parse(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int expected, int first,
          BnArgs *a) {
  if (nparam != expected) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  if (!nchw(ndims, shapes, first, &a->n, &a->c, &a->size) || !is_vec(ndims, shapes, first + 1, a->c) ||
      !is_vec(ndims, shapes, first + 2, a->c) || !is_pair(ndims, shapes, first + 3, a->c) ||
      !is_vec(ndims, shapes, first + 4, 1))
    return kBadShape;
  a->x = static_cast<const float *>(params[first]);
  a->gamma = static_cast<const float *>(params[first + 1]);
  a->beta = static_cast<const float *>(params[first + 2]);
  a->stats = static_cast<const float *>(params[first + 3]);
  a->eps = *static_cast<const float *>(params[first + 4]);
  return kOk;
}

// x (N, C, H, W) -> (2, C): mean and biased variance over N, H, W (shifted by the channel's first value, in double).
int bn_stats(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  int64_t n, c, size;
  if (nparam != 2) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  if (!nchw(ndims, shapes, 0, &n, &c, &size) || !is_pair(ndims, shapes, 1, c)) return kBadShape;
  const float *x = static_cast<const float *>(params[0]);
  float *out = static_cast<float *>(params[1]);
  const double count = static_cast<double>(n * size);
  effnet::parallel_for(c, 1, threads_for(n * c * size), [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      const float k = n * size > 0 ? x[ch * size] : 0.0f;  // shift: avoids cancellation in E[x^2] - E[x]^2
      double s1 = 0.0, s2 = 0.0;
      for (int64_t b = 0; b < n; ++b) {
        const float *v = x + (b * c + ch) * size;
        for (int64_t s = 0; s < size; s += 1024) {
          const int64_t e = s + 1024 < size ? s + 1024 : size;
          float part1 = 0.0f, part2 = 0.0f;
#pragma omp simd reduction(+ : part1, part2)
          for (int64_t i = s; i < e; ++i) {
            const float u = v[i] - k;
            part1 += u;
            part2 += u * u;
          }
          s1 += part1;
          s2 += part2;
        }
      }
      const double m = count > 0 ? s1 / count : 0.0;
      const double var = count > 0 ? s2 / count - m * m : 0.0;
      out[ch] = static_cast<float>(k + m);
      out[c + ch] = static_cast<float>(var > 0.0 ? var : 0.0);
    }
  });
  return kOk;
}

// (x, gamma, beta, stats, eps) -> y = act(x * scale + shift).
template <bool kSilu>
int bn_act(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  BnArgs a;
  const int status = parse(nparam, params, ndims, shapes, dtypes, 6, 0, &a);
  if (status != kOk) return status;
  if (effnet::numel(ndims[5], shapes[5]) != a.n * a.c * a.size) return kBadShape;
  float *y = static_cast<float *>(params[5]);
  const int64_t planes = a.n * a.c;
  effnet::parallel_for(planes, 16, threads_for(2 * planes * a.size), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const Channel k = channel(a.gamma, a.beta, a.stats, a.eps, a.c, p % a.c);
      const float *src = a.x + p * a.size;
      float *dst = y + p * a.size;
#pragma omp simd
      for (int64_t i = 0; i < a.size; ++i) {
        const float z = src[i] * k.scale + k.shift;
        dst[i] = kSilu ? z / (1.0f + expf(-z)) : z;
      }
    }
  });
  return kOk;
}

// (dy, x, gamma, beta, stats, eps) -> (2, C): [d gamma, d beta] = [sum dz * xhat, sum dz] over N, H, W, where
// dz = dy * act'(z) and xhat = (x - mean) * rstd.  The same for batch and fixed statistics.
template <bool kSilu>
int bn_act_grad_params(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  BnArgs a;
  const int status = parse(nparam, params, ndims, shapes, dtypes, 7, 1, &a);
  if (status != kOk) return status;
  if (effnet::numel(ndims[0], shapes[0]) != a.n * a.c * a.size || !is_pair(ndims, shapes, 6, a.c)) return kBadShape;
  const float *dy = static_cast<const float *>(params[0]);
  float *out = static_cast<float *>(params[6]);
  effnet::parallel_for(a.c, 1, threads_for(2 * a.n * a.c * a.size), [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      const Channel k = channel(a.gamma, a.beta, a.stats, a.eps, a.c, ch);
      double d_gamma = 0.0, d_beta = 0.0;
      for (int64_t b = 0; b < a.n; ++b) {
        const float *g = dy + (b * a.c + ch) * a.size, *v = a.x + (b * a.c + ch) * a.size;
        // One pass for both sums (written out: GCC does not vectorise the libmvec expf through a lambda here).
        for (int64_t s = 0; s < a.size; s += 1024) {
          const int64_t e = s + 1024 < a.size ? s + 1024 : a.size;
          float part_gamma = 0.0f, part_beta = 0.0f;
#pragma omp simd reduction(+ : part_gamma, part_beta)
          for (int64_t i = s; i < e; ++i) {
            const float dz = act_grad<kSilu>(g[i], v[i], k.scale, k.shift);
            part_gamma += dz * (v[i] - k.mean);
            part_beta += dz;
          }
          d_gamma += part_gamma;
          d_beta += part_beta;
        }
      }
      out[ch] = static_cast<float>(d_gamma * k.rstd);
      out[a.c + ch] = static_cast<float>(d_beta);
    }
  });
  return kOk;
}

// dx of y = act(bn(x)).  With kBatchStats (training) the statistics are functions of x:
//   dx = scale * (dz - d_beta / M - xhat * d_gamma / M),  M = N * H * W,
// reading [d gamma, d beta] from the grad_params kernel's output (the last input); otherwise dx = scale * dz.
template <bool kSilu, bool kBatchStats>
int bn_act_grad_x(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  BnArgs a;
  const int inputs = kBatchStats ? 7 : 6;
  const int status = parse(nparam, params, ndims, shapes, dtypes, inputs + 1, 1, &a);
  if (status != kOk) return status;
  const int64_t total = a.n * a.c * a.size;
  if (effnet::numel(ndims[0], shapes[0]) != total || effnet::numel(ndims[inputs], shapes[inputs]) != total)
    return kBadShape;
  if (kBatchStats && !is_pair(ndims, shapes, 6, a.c)) return kBadShape;
  const float *dy = static_cast<const float *>(params[0]);
  const float *dparams = kBatchStats ? static_cast<const float *>(params[6]) : nullptr;
  float *dx = static_cast<float *>(params[inputs]);
  const int64_t planes = a.n * a.c;
  const float inv_count = total > 0 ? a.c / static_cast<float>(total) : 0.0f;
  effnet::parallel_for(planes, 16, threads_for(3 * total), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t ch = p % a.c;
      const Channel k = channel(a.gamma, a.beta, a.stats, a.eps, a.c, ch);
      // xhat * d_gamma / M = (x - mean) * rstd * d_gamma / M
      const float mean_term = kBatchStats ? dparams[a.c + ch] * inv_count : 0.0f;
      const float xhat_term = kBatchStats ? dparams[ch] * inv_count * k.rstd : 0.0f;
      const float *g = dy + p * a.size, *v = a.x + p * a.size;
      float *out = dx + p * a.size;
#pragma omp simd
      for (int64_t i = 0; i < a.size; ++i) {
        const float dz = act_grad<kSilu>(g[i], v[i], k.scale, k.shift);
        out[i] = kBatchStats ? k.scale * (dz - mean_term - (v[i] - k.mean) * xhat_term) : k.scale * dz;
      }
    }
  });
  return kOk;
}

}  // namespace

EFFNET_KERNEL(effnet_bn_stats, bn_stats(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_bn_act, bn_act<false>(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_bn_act_silu, bn_act<true>(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_bn_act_grad_params, bn_act_grad_params<false>(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_bn_act_silu_grad_params, bn_act_grad_params<true>(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_bn_act_grad_x, (bn_act_grad_x<false, false>(nparam, params, ndims, shapes, dtypes)))
EFFNET_KERNEL(effnet_bn_act_silu_grad_x, (bn_act_grad_x<true, false>(nparam, params, ndims, shapes, dtypes)))
EFFNET_KERNEL(effnet_bn_act_grad_x_batch, (bn_act_grad_x<false, true>(nparam, params, ndims, shapes, dtypes)))
EFFNET_KERNEL(effnet_bn_act_silu_grad_x_batch, (bn_act_grad_x<true, true>(nparam, params, ndims, shapes, dtypes)))
