// BatchNorm (+ SiLU) of NCHW float32 on CPU, forward and backward, in two streaming passes each way:
//   stats = effnet_bn_stats(x)                                   (2, C): batch mean and biased variance
//   y     = effnet_bn_act[_silu](x, gamma, beta, stats, eps)     act(gamma * (x - mean) / sqrt(var + eps) + beta)
// and the gradient of y, either through batch statistics (training: `stats` is a function of x, and the backward
// is the full BN formula in one pass after the per-channel sums) or through fixed statistics (eval / norm_eval).
// oneDNN's NCHW batch norm (`ncsp_bnorm`) plus separate Sigmoid/Mul passes, or an autodiff composition of an affine
// kernel and a statistics kernel, each cost several more passes over the activations and an AddN per layer.
// Per-channel sums are owned by one work item each and accumulated in double in a fixed order: deterministic.
#include <algorithm>
#include <vector>

#include "kernels.h"

namespace {

using effnet::all_float32;
using effnet::kBadArgs;
using effnet::kBadDtype;
using effnet::kBadShape;
using effnet::kOk;
using effnet::threads_for;
using Channel = effnet::BnChannel;
constexpr auto channel = effnet::bn_channel;

// x must be (N, C, H, W).
bool nchw(const int *ndims, int64_t **shapes, int idx, int64_t *n, int64_t *c, int64_t *size) {
  if (ndims[idx] != 4) return false;
  *n = shapes[idx][0];
  *c = shapes[idx][1];
  *size = shapes[idx][2] * shapes[idx][3];
  return true;
}

bool is_pair(const int *ndims, int64_t **shapes, int idx, int64_t c) {
  return ndims[idx] == 2 && shapes[idx][0] == 2 && shapes[idx][1] == c;
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
  effnet::BnParams bn;
  if (!nchw(ndims, shapes, first, &a->n, &a->c, &a->size) || !effnet::parse_bn_params(params, ndims, shapes, first + 1,
                                                                                      a->c, &bn))
    return kBadShape;
  a->x = static_cast<const float *>(params[first]);
  a->gamma = bn.gamma;
  a->beta = bn.beta;
  a->stats = bn.stats;
  a->eps = bn.eps;
  return kOk;
}

// Planes of fewer values than this (4x4 and 2x2 at 64 px input, 7x7 at 224 px) are too short for a vector loop each:
// the per-plane loop and the scalar tail cost more than the arithmetic (a 2x2 map ran 7x slower per value than a
// 16x16 one).  The kernels then run over whole runs of planes instead, with the per-channel constants repeated for
// every value of a sample (`Repeated`), and reduce each plane afterwards.
constexpr int64_t kSmallPlane = 64;
// Values per work item of the small-plane kernels.
constexpr int64_t kSmallBlock = 4096;

// Per-channel constants repeated for each of a sample's C * size values (small planes: at most C * 63 floats each).
struct Repeated {
  std::vector<float> scale, shift, mean;
  Repeated(const BnArgs &a) : scale(a.c * a.size), shift(a.c * a.size), mean(a.c * a.size) {
    for (int64_t ch = 0; ch < a.c; ++ch) {
      const Channel k = channel(a.gamma, a.beta, a.stats, a.eps, a.c, ch);
      std::fill_n(scale.begin() + ch * a.size, a.size, k.scale);
      std::fill_n(shift.begin() + ch * a.size, a.size, k.shift);
      std::fill_n(mean.begin() + ch * a.size, a.size, k.mean);
    }
  }
};

// Channels per work item of the small-plane kernels, and the number of items.
int64_t small_channels(int64_t size) { return std::max<int64_t>(1, kSmallBlock / std::max<int64_t>(1, size)); }
int64_t small_items(int64_t c, int64_t size) { return (c + small_channels(size) - 1) / small_channels(size); }

// Sums over each plane of a run of nc planes of `size` values, added (in double) to per-channel totals.
void add_plane_sums(const float *values, int64_t nc, int64_t size, double *totals) {
  for (int64_t j = 0; j < nc; ++j) {
    float part = 0.0f;
    for (int64_t i = j * size; i < (j + 1) * size; ++i) part += values[i];
    totals[j] += part;
  }
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
  // mean and variance from the shifted sums s1, s2 of channel ch (see below).
  const auto finish = [&](int64_t ch, float k, double s1, double s2) {
    const double m = count > 0 ? s1 / count : 0.0;
    const double var = count > 0 ? s2 / count - m * m : 0.0;
    out[ch] = static_cast<float>(k + m);
    out[c + ch] = static_cast<float>(var > 0.0 ? var : 0.0);
  };
  if (size < kSmallPlane) {
    const int64_t channels = small_channels(size);
    effnet::parallel_for(small_items(c, size), 1, threads_for(n * c * size), [&](int64_t begin, int64_t end) {
      std::vector<float> shift(channels * size), u1(channels * size), u2(channels * size);
      std::vector<double> s1(channels), s2(channels);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t c0 = item * channels, nc = std::min(channels, c - c0), len = nc * size;
        for (int64_t j = 0; j < nc; ++j) std::fill_n(shift.begin() + j * size, size, n > 0 ? x[(c0 + j) * size] : 0.0f);
        std::fill(s1.begin(), s1.end(), 0.0);
        std::fill(s2.begin(), s2.end(), 0.0);
        for (int64_t b = 0; b < n; ++b) {
          const float *v = x + (b * c + c0) * size;
#pragma omp simd
          for (int64_t i = 0; i < len; ++i) {
            const float u = v[i] - shift[i];
            u1[i] = u;
            u2[i] = u * u;
          }
          add_plane_sums(u1.data(), nc, size, s1.data());
          add_plane_sums(u2.data(), nc, size, s2.data());
        }
        for (int64_t j = 0; j < nc; ++j) finish(c0 + j, shift[j * size], s1[j], s2[j]);
      }
    });
    return kOk;
  }
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
      finish(ch, k, s1, s2);
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
  if (a.size < kSmallPlane) {
    const Repeated r(a);
    const int64_t block = small_channels(a.size) * a.size, per_sample = a.c * a.size, items = small_items(a.c, a.size);
    effnet::parallel_for(a.n * items, 1, threads_for(2 * a.n * per_sample), [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t off = item % items * block, len = std::min(block, per_sample - off);
        const int64_t base = item / items * per_sample + off;
        const float *src = a.x + base, *scale = r.scale.data() + off, *shift = r.shift.data() + off;
        float *dst = y + base;
        if (kSilu) {
          effnet::silu_span(src, len, scale, shift, dst);
          continue;
        }
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) dst[i] = src[i] * scale[i] + shift[i];
      }
    });
    return kOk;
  }
  const int64_t planes = a.n * a.c;
  effnet::parallel_for(planes, 16, threads_for(2 * planes * a.size), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const Channel k = channel(a.gamma, a.beta, a.stats, a.eps, a.c, p % a.c);
      const float *src = a.x + p * a.size;
      float *dst = y + p * a.size;
      if (kSilu) {
        effnet::silu_span(src, a.size, k.scale, k.shift, dst);
        continue;
      }
#pragma omp simd
      for (int64_t i = 0; i < a.size; ++i) dst[i] = src[i] * k.scale + k.shift;
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
  if (a.size < kSmallPlane) {
    // One block of channels per work item: dz and dz * (x - mean) of a sample's run of planes in one vector loop,
    // then summed per plane (float) and per channel over the batch (double, in order).
    const Repeated r(a);
    const int64_t channels = small_channels(a.size);
    const int threads = threads_for(2 * a.n * a.c * a.size);
    effnet::parallel_for(small_items(a.c, a.size), 1, threads, [&](int64_t begin, int64_t end) {
      std::vector<float> dz(channels * a.size), dzx(channels * a.size);
      std::vector<double> d_gamma(channels), d_beta(channels);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t c0 = item * channels, nc = std::min(channels, a.c - c0), len = nc * a.size, off = c0 * a.size;
        const float *scale = r.scale.data() + off, *shift = r.shift.data() + off, *mean = r.mean.data() + off;
        std::fill(d_gamma.begin(), d_gamma.end(), 0.0);
        std::fill(d_beta.begin(), d_beta.end(), 0.0);
        for (int64_t b = 0; b < a.n; ++b) {
          const float *g = dy + b * a.c * a.size + off, *v = a.x + b * a.c * a.size + off;
#pragma omp simd
          for (int64_t i = 0; i < len; ++i) {
            const float d = act_grad<kSilu>(g[i], v[i], scale[i], shift[i]);
            dz[i] = d;
            dzx[i] = d * (v[i] - mean[i]);
          }
          add_plane_sums(dzx.data(), nc, a.size, d_gamma.data());
          add_plane_sums(dz.data(), nc, a.size, d_beta.data());
        }
        for (int64_t j = 0; j < nc; ++j) {
          const Channel k = channel(a.gamma, a.beta, a.stats, a.eps, a.c, c0 + j);
          out[c0 + j] = static_cast<float>(d_gamma[j] * k.rstd);
          out[a.c + c0 + j] = static_cast<float>(d_beta[j]);
        }
      }
    });
    return kOk;
  }
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
  if (a.size < kSmallPlane) {
    // dx = scale * (dz - mean_term - (x - mean) * xhat_term), the per-channel terms repeated per value.
    const Repeated r(a);
    const int64_t per_sample = a.c * a.size, block = small_channels(a.size) * a.size, items = small_items(a.c, a.size);
    std::vector<float> mean_term(kBatchStats ? per_sample : 0), xhat_term(kBatchStats ? per_sample : 0);
    for (int64_t ch = 0; kBatchStats && ch < a.c; ++ch) {
      const float rstd = channel(a.gamma, a.beta, a.stats, a.eps, a.c, ch).rstd;
      std::fill_n(mean_term.begin() + ch * a.size, a.size, dparams[a.c + ch] * inv_count);
      std::fill_n(xhat_term.begin() + ch * a.size, a.size, dparams[ch] * inv_count * rstd);
    }
    effnet::parallel_for(a.n * items, 1, threads_for(3 * total), [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t off = item % items * block, len = std::min(block, per_sample - off);
        const int64_t base = item / items * per_sample + off;
        const float *g = dy + base, *v = a.x + base;
        const float *scale = r.scale.data() + off, *shift = r.shift.data() + off, *mean = r.mean.data() + off;
        const float *mt = kBatchStats ? mean_term.data() + off : nullptr;
        const float *xt = kBatchStats ? xhat_term.data() + off : nullptr;
        float *o = dx + base;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) {
          const float dz = act_grad<kSilu>(g[i], v[i], scale[i], shift[i]);
          o[i] = kBatchStats ? scale[i] * (dz - mt[i] - (v[i] - mean[i]) * xt[i]) : scale[i] * dz;
        }
      }
    });
    return kOk;
  }
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
