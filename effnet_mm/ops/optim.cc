// Multi-tensor optimizer steps and global-norm gradient clipping: one kernel call for all parameters, like PyTorch's
// foreach/fused optimizers.  MindSpore runs an optimizer as ~5-15 small ops per parameter (B0: 213 parameters, so
// 1000-3000 launches per step) and clipping as ~3 more per parameter; at small images that dominated a step.
//
// Optimizer steps update the parameters and their state IN PLACE (like MindSpore's own ApplyRMSProp/Assign): the
// Python side marks the primitive `side_effect_mem`, so MindSpore orders it after every read of the parameters in
// the graph and never drops it.  Inputs: lr (scalar), hyper (H,), decay (P,) per-parameter L2 / weight decay, then P
// parameters, P gradients and S x P state tensors; output: a (1,) float (1.0) that only carries the dependency.
// Every element is updated by one thread in a fixed way: deterministic.  Conventions: kernels.h.
#include <math.h>

#include <vector>

#include "kernels.h"

namespace {

using effnet::all_float32;
using effnet::kBadArgs;
using effnet::kBadDtype;
using effnet::kBadShape;
using effnet::kOk;
using effnet::numel;

constexpr int64_t kPiece = 16384;  // elements per work item

// The (tensor, begin, end) pieces of a list of tensors, so large and small tensors spread evenly over threads.
struct Piece {
  int tensor;
  int64_t begin, end;
};

std::vector<Piece> pieces(const int64_t *sizes, int count) {
  std::vector<Piece> out;
  for (int t = 0; t < count; ++t) {
    for (int64_t b = 0; b < sizes[t]; b += kPiece) out.push_back({t, b, b + kPiece < sizes[t] ? b + kPiece : sizes[t]});
  }
  return out;
}

struct MultiTensor {
  int count = 0;                     // parameters P
  float lr = 0.0f;
  const float *hyper = nullptr;
  const float *decay = nullptr;
  std::vector<int64_t> sizes;
  std::vector<float *> tensors;      // P params, P grads, S * P states
  float *flag = nullptr;
  float *param(int t) const { return tensors[t]; }
  const float *grad(int t) const { return tensors[count + t]; }
  float *state(int s, int t) const { return tensors[(2 + s) * count + t]; }
};

int parse(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int hyper, int states,
          MultiTensor *m) {
  const int tensors = nparam - 4;
  if (tensors <= 0 || tensors % (2 + states) != 0) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  m->count = tensors / (2 + states);
  if (numel(ndims[0], shapes[0]) != 1 || numel(ndims[1], shapes[1]) != hyper ||
      numel(ndims[2], shapes[2]) != m->count || numel(ndims[nparam - 1], shapes[nparam - 1]) != 1)
    return kBadShape;
  m->lr = *static_cast<const float *>(params[0]);
  m->hyper = static_cast<const float *>(params[1]);
  m->decay = static_cast<const float *>(params[2]);
  for (int i = 0; i < tensors; ++i) {
    m->tensors.push_back(static_cast<float *>(params[3 + i]));
    if (i < m->count) m->sizes.push_back(numel(ndims[3 + i], shapes[3 + i]));
    if (numel(ndims[3 + i], shapes[3 + i]) != m->sizes[i % m->count]) return kBadShape;
  }
  m->flag = static_cast<float *>(params[nparam - 1]);
  return kOk;
}

// Applies update(t, begin, end) to every piece of every parameter tensor, on all kernel threads.
template <typename F>
int for_all(const MultiTensor &m, F update) {
  const std::vector<Piece> work = pieces(m.sizes.data(), m.count);
  int64_t total = 0;
  for (int64_t s : m.sizes) total += s;
  effnet::parallel_for(static_cast<int64_t>(work.size()), 1, effnet::threads_for(4 * total),
                       [&](int64_t begin, int64_t end) {
                         for (int64_t i = begin; i < end; ++i) update(work[i].tensor, work[i].begin, work[i].end);
                       });
  *m.flag = 1.0f;
  return kOk;
}

// hyper = [momentum, nesterov (0/1)]; state = [velocity].  PyTorch's SGD without dampening, L2 added to the gradient:
//   g += wd * p;  v = momentum * v + g;  p -= lr * (nesterov ? g + momentum * v : v)
int sgd_step(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  MultiTensor m;
  const int status = parse(nparam, params, ndims, shapes, dtypes, 2, 1, &m);
  if (status != kOk) return status;
  const float momentum = m.hyper[0], lr = m.lr;
  const bool nesterov = m.hyper[1] != 0.0f;
  return for_all(m, [&](int t, int64_t begin, int64_t end) {
    float *p = m.param(t), *v = m.state(0, t);
    const float *g = m.grad(t);
    const float wd = m.decay[t];
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float grad = g[i] + wd * p[i];
      const float vel = momentum * v[i] + grad;
      v[i] = vel;
      p[i] -= lr * (nesterov ? grad + momentum * vel : vel);
    }
  });
}

// hyper = [decay (rho), momentum, eps]; state = [mean_square, moment].  TF1 / MindSpore ApplyRMSProp:
//   g += wd * p;  ms = rho * ms + (1 - rho) * g^2;  mom = momentum * mom + lr * g / sqrt(ms + eps);  p -= mom
int rmsprop_step(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  MultiTensor m;
  const int status = parse(nparam, params, ndims, shapes, dtypes, 3, 2, &m);
  if (status != kOk) return status;
  const float rho = m.hyper[0], momentum = m.hyper[1], eps = m.hyper[2], lr = m.lr;
  return for_all(m, [&](int t, int64_t begin, int64_t end) {
    float *p = m.param(t), *ms = m.state(0, t), *mom = m.state(1, t);
    const float *g = m.grad(t);
    const float wd = m.decay[t];
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float grad = g[i] + wd * p[i];
      const float square = rho * ms[i] + (1.0f - rho) * grad * grad;
      ms[i] = square;
      const float step = momentum * mom[i] + lr * grad / sqrtf(square + eps);
      mom[i] = step;
      p[i] -= step;
    }
  });
}

// hyper = [beta1, beta2, eps]; state = [m, v].  MindSpore's AdamWeightDecay (decoupled decay, no bias correction):
//   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2;  p -= lr * (m / (eps + sqrt(v)) + wd * p)
int adamw_step(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  MultiTensor m;
  const int status = parse(nparam, params, ndims, shapes, dtypes, 3, 2, &m);
  if (status != kOk) return status;
  const float b1 = m.hyper[0], b2 = m.hyper[1], eps = m.hyper[2], lr = m.lr;
  return for_all(m, [&](int t, int64_t begin, int64_t end) {
    float *p = m.param(t), *mt = m.state(0, t), *vt = m.state(1, t);
    const float *g = m.grad(t);
    const float wd = m.decay[t];
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float m1 = b1 * mt[i] + (1.0f - b1) * g[i];
      const float v1 = b2 * vt[i] + (1.0f - b2) * g[i] * g[i];
      mt[i] = m1;
      vt[i] = v1;
      p[i] -= lr * (m1 / (eps + sqrtf(v1)) + wd * p[i]);
    }
  });
}

// (max_norm (1,), g_1 ... g_P) -> (g_1 ... g_P) * max_norm / max(global L2 norm, max_norm), as
// mindspore.ops.clip_by_global_norm.  The squared norm is summed per piece in double, then over pieces in order.
int clip_global_norm(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam < 3 || (nparam - 1) % 2 != 0) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int count = (nparam - 1) / 2;
  if (numel(ndims[0], shapes[0]) != 1) return kBadShape;
  std::vector<int64_t> sizes(count);
  int64_t total = 0;
  for (int t = 0; t < count; ++t) {
    sizes[t] = numel(ndims[1 + t], shapes[1 + t]);
    if (numel(ndims[1 + count + t], shapes[1 + count + t]) != sizes[t]) return kBadShape;
    total += sizes[t];
  }
  const float max_norm = *static_cast<const float *>(params[0]);
  const std::vector<Piece> work = pieces(sizes.data(), count);
  std::vector<double> partial(work.size());
  const int threads = effnet::threads_for(2 * total);
  effnet::parallel_for(static_cast<int64_t>(work.size()), 1, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float *g = static_cast<const float *>(params[1 + work[i].tensor]);
      double sum = 0.0;
      for (int64_t b = work[i].begin; b < work[i].end; b += 1024) {
        const int64_t e = b + 1024 < work[i].end ? b + 1024 : work[i].end;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (int64_t j = b; j < e; ++j) part += g[j] * g[j];
        sum += part;
      }
      partial[i] = sum;
    }
  });
  double squared = 0.0;
  for (double s : partial) squared += s;
  const double norm = sqrt(squared);
  const float scale = static_cast<float>(static_cast<double>(max_norm) / (norm > max_norm ? norm : max_norm));
  effnet::parallel_for(static_cast<int64_t>(work.size()), 1, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float *g = static_cast<const float *>(params[1 + work[i].tensor]);
      float *out = static_cast<float *>(params[1 + count + work[i].tensor]);
#pragma omp simd
      for (int64_t j = work[i].begin; j < work[i].end; ++j) out[j] = g[j] * scale;
    }
  });
  return kOk;
}

// (decay (1,), shadow_1 ... shadow_P, param_1 ... param_P) -> (1,): shadow = decay * shadow + (1 - decay) * param,
// in place (the exponential moving average of the weights, TF's ExponentialMovingAverage).
int ema_update(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam < 4 || (nparam - 2) % 2 != 0) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int count = (nparam - 2) / 2;
  if (numel(ndims[0], shapes[0]) != 1 || numel(ndims[nparam - 1], shapes[nparam - 1]) != 1) return kBadShape;
  std::vector<int64_t> sizes(count);
  int64_t total = 0;
  for (int t = 0; t < count; ++t) {
    sizes[t] = numel(ndims[1 + t], shapes[1 + t]);
    if (numel(ndims[1 + count + t], shapes[1 + count + t]) != sizes[t]) return kBadShape;
    total += sizes[t];
  }
  const float decay = *static_cast<const float *>(params[0]);
  const std::vector<Piece> work = pieces(sizes.data(), count);
  effnet::parallel_for(static_cast<int64_t>(work.size()), 1, effnet::threads_for(3 * total),
                       [&](int64_t begin, int64_t end) {
                         for (int64_t i = begin; i < end; ++i) {
                           float *shadow = static_cast<float *>(params[1 + work[i].tensor]);
                           const float *param = static_cast<const float *>(params[1 + count + work[i].tensor]);
#pragma omp simd
                           for (int64_t j = work[i].begin; j < work[i].end; ++j)
                             shadow[j] = shadow[j] * decay + param[j] * (1.0f - decay);
                         }
                       });
  *static_cast<float *>(params[nparam - 1]) = 1.0f;
  return kOk;
}

}  // namespace

EFFNET_KERNEL(effnet_sgd_step, sgd_step(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_rmsprop_step, rmsprop_step(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_adamw_step, adamw_step(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_clip_global_norm, clip_global_norm(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_ema_update, ema_update(nparam, params, ndims, shapes, dtypes))
