// Fast CPU k x k convolutions with TensorFlow "SAME" padding for MindSpore `ops.Custom(func_type="aot")`.
//
// MindSpore 2.10 on CPU hands every k x k conv to oneDNN's reference kernel; these direct kernels replace it for
// EfficientNet's depthwise convs and its dense stem.  Layout is NCHW float32, weights (out, in / groups, k, k).
//
// Every exported function has MindSpore's AOT CPU signature
//     int f(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream, void *extra)
// with the inputs first and the output last; it returns 0 on success and a non-zero code otherwise (MindSpore then
// raises).  The stride is part of the function name; the kernel size and the TF "SAME" pads are derived from the
// shapes.  Backward functions take one extra input (x or w) only to learn the shape of their output.
//
// Speed comes from one idea: every plane is first copied into a zero-padded buffer whose columns are split by
// phase (column % stride), so every inner loop over output columns reads and writes contiguous memory and
// vectorises (`omp simd`) for stride 1 and 2 alike; planes (or output channels) are spread over OpenMP threads with
// a static schedule and reduced in a fixed order, so results do not depend on timing.
#include <omp.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <vector>

namespace {

constexpr int kOk = 0;
constexpr int kBadArgs = 1;
constexpr int kBadDtype = 2;
constexpr int kBadShape = 3;

// Geometry of one spatial plane and its phase-split padded copy.
struct Plane {
  int64_t h, w;      // input size
  int64_t ho, wo;    // output size: ceil(in / stride)
  int64_t k, s;      // kernel size, stride
  int64_t pt, pl;    // TF SAME pads before (top, left); the odd pixel goes after
  int64_t hp, wq;    // padded rows; columns per phase
  int64_t size() const { return s * hp * wq; }
};

int64_t same_pad_before(int64_t in, int64_t out, int64_t k, int64_t s) {
  const int64_t total = (out - 1) * s + k - in;
  return total > 0 ? total / 2 : 0;
}

bool make_plane(int64_t h, int64_t w, int64_t ho, int64_t wo, int64_t k, int64_t s, Plane *g) {
  if (h <= 0 || w <= 0 || k <= 0 || k > 15 || (s != 1 && s != 2)) return false;
  if (ho != (h + s - 1) / s || wo != (w + s - 1) / s) return false;
  g->h = h;
  g->w = w;
  g->ho = ho;
  g->wo = wo;
  g->k = k;
  g->s = s;
  g->pt = same_pad_before(h, ho, k, s);
  g->pl = same_pad_before(w, wo, k, s);
  g->hp = (ho - 1) * s + k;
  g->wq = wo + (k - 1) / s;
  return true;
}

// Copy one input plane into the phase-split padded buffer: buf[p][r][j] = x[r - pt][j * s + p - pl] (0 outside).
void pack(const float *x, const Plane &g, float *buf) {
  for (int64_t p = 0; p < g.s; ++p) {
    for (int64_t r = 0; r < g.hp; ++r) {
      float *dst = buf + (p * g.hp + r) * g.wq;
      const int64_t ih = r - g.pt;
      if (ih < 0 || ih >= g.h) {
        std::memset(dst, 0, sizeof(float) * g.wq);
        continue;
      }
      const float *src = x + ih * g.w;
      for (int64_t j = 0; j < g.wq; ++j) {
        const int64_t iw = j * g.s + p - g.pl;
        dst[j] = (iw >= 0 && iw < g.w) ? src[iw] : 0.0f;
      }
    }
  }
}

// Inverse of pack for gradients: dx[ih][iw] = dbuf[p][ih + pt][j] with iw + pl = j * s + p (padding dropped).
void unpack(const float *dbuf, const Plane &g, float *dx) {
  for (int64_t ih = 0; ih < g.h; ++ih) {
    const int64_t r = ih + g.pt;
    float *dst = dx + ih * g.w;
    if (r >= g.hp) {  // rows past the last window never receive gradient
      std::memset(dst, 0, sizeof(float) * g.w);
      continue;
    }
    for (int64_t iw = 0; iw < g.w; ++iw) {
      const int64_t c = iw + g.pl;
      const int64_t p = c % g.s, j = c / g.s;
      dst[iw] = j < g.wq ? dbuf[(p * g.hp + r) * g.wq + j] : 0.0f;
    }
  }
}

// Pointer to the padded row feeding output row `oh` through tap (kh, kw), already shifted to output column 0.
inline const float *tap_row(const float *buf, const Plane &g, int64_t oh, int64_t kh, int64_t kw) {
  return buf + ((kw % g.s) * g.hp + oh * g.s + kh) * g.wq + kw / g.s;
}

inline float *tap_row(float *buf, const Plane &g, int64_t oh, int64_t kh, int64_t kw) {
  return buf + ((kw % g.s) * g.hp + oh * g.s + kh) * g.wq + kw / g.s;
}

// y[oh][:] += sum over taps of w[kh][kw] * x_padded[...]; y must be zeroed (or hold a partial sum).
void plane_fwd_acc(const float *buf, const float *wk, const Plane &g, float *y) {
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    float *yr = y + oh * g.wo;
    for (int64_t kh = 0; kh < g.k; ++kh) {
      for (int64_t kw = 0; kw < g.k; ++kw) {
        const float wv = wk[kh * g.k + kw];
        const float *src = tap_row(buf, g, oh, kh, kw);
#pragma omp simd
        for (int64_t ow = 0; ow < g.wo; ++ow) yr[ow] += wv * src[ow];
      }
    }
  }
}

// dbuf (phase-split, padded) += transposed conv of dy with the k x k kernel wk.
void plane_bwd_x_acc(const float *dy, const float *wk, const Plane &g, float *dbuf) {
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const float *dyr = dy + oh * g.wo;
    for (int64_t kh = 0; kh < g.k; ++kh) {
      for (int64_t kw = 0; kw < g.k; ++kw) {
        const float wv = wk[kh * g.k + kw];
        float *dst = tap_row(dbuf, g, oh, kh, kw);
#pragma omp simd
        for (int64_t ow = 0; ow < g.wo; ++ow) dst[ow] += wv * dyr[ow];
      }
    }
  }
}

// acc[kh * k + kw] += sum over the plane of dy * x_padded shifted by the tap.
void plane_bwd_w_acc(const float *dy, const float *buf, const Plane &g, double *acc) {
  for (int64_t kh = 0; kh < g.k; ++kh) {
    for (int64_t kw = 0; kw < g.k; ++kw) {
      float total = 0.0f;
      for (int64_t oh = 0; oh < g.ho; ++oh) {
        const float *dyr = dy + oh * g.wo;
        const float *src = tap_row(buf, g, oh, kh, kw);
        float row = 0.0f;
#pragma omp simd reduction(+ : row)
        for (int64_t ow = 0; ow < g.wo; ++ow) row += dyr[ow] * src[ow];
        total += row;
      }
      acc[kh * g.k + kw] += total;
    }
  }
}

bool all_float32(int nparam, const char **dtypes) {
  for (int i = 0; i < nparam; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

bool is_4d(int nparam, const int *ndims) {
  for (int i = 0; i < nparam; ++i) {
    if (ndims[i] != 4) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Depthwise: x (N, C, H, W), w (C, 1, K, K), y (N, C, Ho, Wo).

int dw_fwd(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s) {
  if (nparam != 3 || !is_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *xs = shapes[0], *ws = shapes[1], *ys = shapes[2];
  const int64_t n = xs[0], c = xs[1], k = ws[2];
  Plane g;
  if (ws[0] != c || ws[1] != 1 || ws[3] != k || ys[0] != n || ys[1] != c ||
      !make_plane(xs[2], xs[3], ys[2], ys[3], k, s, &g))
    return kBadShape;
  const float *x = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  const int64_t in_sz = g.h * g.w, out_sz = g.ho * g.wo, planes = n * c;
#pragma omp parallel
  {
    std::vector<float> buf(g.size());
#pragma omp for schedule(static)
    for (int64_t i = 0; i < planes; ++i) {
      pack(x + i * in_sz, g, buf.data());
      float *yp = y + i * out_sz;
      std::memset(yp, 0, sizeof(float) * out_sz);
      plane_fwd_acc(buf.data(), w + (i % c) * k * k, g, yp);
    }
  }
  return kOk;
}

// Inputs dy, w, x (shape only); output dx.
int dw_bwd_x(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s) {
  if (nparam != 4 || !is_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *ys = shapes[0], *ws = shapes[1], *xs = shapes[3];
  const int64_t n = xs[0], c = xs[1], k = ws[2];
  Plane g;
  if (ws[0] != c || ws[1] != 1 || ws[3] != k || ys[0] != n || ys[1] != c ||
      !make_plane(xs[2], xs[3], ys[2], ys[3], k, s, &g))
    return kBadShape;
  const float *dy = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[3]);
  const int64_t in_sz = g.h * g.w, out_sz = g.ho * g.wo, planes = n * c;
#pragma omp parallel
  {
    std::vector<float> dbuf(g.size());
#pragma omp for schedule(static)
    for (int64_t i = 0; i < planes; ++i) {
      std::fill(dbuf.begin(), dbuf.end(), 0.0f);
      plane_bwd_x_acc(dy + i * out_sz, w + (i % c) * k * k, g, dbuf.data());
      unpack(dbuf.data(), g, dx + i * in_sz);
    }
  }
  return kOk;
}

// Inputs dy, x, w (shape only); output dw.  One channel per task, batch summed in order: deterministic.
int dw_bwd_w(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s) {
  if (nparam != 4 || !is_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *ys = shapes[0], *xs = shapes[1], *ws = shapes[3];
  const int64_t n = xs[0], c = xs[1], k = ws[2];
  Plane g;
  if (ws[0] != c || ws[1] != 1 || ws[3] != k || ys[0] != n || ys[1] != c ||
      !make_plane(xs[2], xs[3], ys[2], ys[3], k, s, &g))
    return kBadShape;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  float *dw = static_cast<float *>(params[3]);
  const int64_t in_sz = g.h * g.w, out_sz = g.ho * g.wo;
#pragma omp parallel
  {
    std::vector<float> buf(g.size());
    std::vector<double> acc(k * k);
#pragma omp for schedule(static)
    for (int64_t ch = 0; ch < c; ++ch) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t b = 0; b < n; ++b) {
        const int64_t i = b * c + ch;
        pack(x + i * in_sz, g, buf.data());
        plane_bwd_w_acc(dy + i * out_sz, buf.data(), g, acc.data());
      }
      for (int64_t t = 0; t < k * k; ++t) dw[ch * k * k + t] = static_cast<float>(acc[t]);
    }
  }
  return kOk;
}

// ---------------------------------------------------------------------------------------------------------------
// Dense (groups = 1, meant for the 3-channel stem): x (N, Ci, H, W), w (Co, Ci, K, K), y (N, Co, Ho, Wo).

// Phase-split padded copies of all N * Ci input planes, shared by the output-channel tasks.
std::vector<float> pack_all(const float *x, int64_t planes, const Plane &g) {
  std::vector<float> packed(planes * g.size());
  const int64_t in_sz = g.h * g.w;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < planes; ++i) pack(x + i * in_sz, g, packed.data() + i * g.size());
  return packed;
}

int dense_fwd(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s) {
  if (nparam != 3 || !is_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *xs = shapes[0], *ws = shapes[1], *ys = shapes[2];
  const int64_t n = xs[0], ci = xs[1], co = ws[0], k = ws[2];
  Plane g;
  if (ws[1] != ci || ws[3] != k || ys[0] != n || ys[1] != co || !make_plane(xs[2], xs[3], ys[2], ys[3], k, s, &g))
    return kBadShape;
  const float *x = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  const std::vector<float> packed = pack_all(x, n * ci, g);
  const int64_t out_sz = g.ho * g.wo;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n * co; ++i) {
    const int64_t b = i / co, oc = i % co;
    float *yp = y + i * out_sz;
    std::memset(yp, 0, sizeof(float) * out_sz);
    for (int64_t c = 0; c < ci; ++c)
      plane_fwd_acc(packed.data() + (b * ci + c) * g.size(), w + (oc * ci + c) * k * k, g, yp);
  }
  return kOk;
}

// Inputs dy, w, x (shape only); output dx.
int dense_bwd_x(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s) {
  if (nparam != 4 || !is_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *ys = shapes[0], *ws = shapes[1], *xs = shapes[3];
  const int64_t n = xs[0], ci = xs[1], co = ws[0], k = ws[2];
  Plane g;
  if (ws[1] != ci || ws[3] != k || ys[0] != n || ys[1] != co || !make_plane(xs[2], xs[3], ys[2], ys[3], k, s, &g))
    return kBadShape;
  const float *dy = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[3]);
  const int64_t in_sz = g.h * g.w, out_sz = g.ho * g.wo;
#pragma omp parallel
  {
    std::vector<float> dbuf(g.size());
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n * ci; ++i) {
      const int64_t b = i / ci, c = i % ci;
      std::fill(dbuf.begin(), dbuf.end(), 0.0f);
      for (int64_t oc = 0; oc < co; ++oc)
        plane_bwd_x_acc(dy + (b * co + oc) * out_sz, w + (oc * ci + c) * k * k, g, dbuf.data());
      unpack(dbuf.data(), g, dx + i * in_sz);
    }
  }
  return kOk;
}

// Inputs dy, x, w (shape only); output dw.  One output channel per task, batch summed in order: deterministic.
int dense_bwd_w(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s) {
  if (nparam != 4 || !is_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *ys = shapes[0], *xs = shapes[1], *ws = shapes[3];
  const int64_t n = xs[0], ci = xs[1], co = ws[0], k = ws[2];
  Plane g;
  if (ws[1] != ci || ws[3] != k || ys[0] != n || ys[1] != co || !make_plane(xs[2], xs[3], ys[2], ys[3], k, s, &g))
    return kBadShape;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  float *dw = static_cast<float *>(params[3]);
  const std::vector<float> packed = pack_all(x, n * ci, g);
  const int64_t out_sz = g.ho * g.wo, taps = k * k;
#pragma omp parallel
  {
    std::vector<double> acc(ci * taps);
#pragma omp for schedule(static)
    for (int64_t oc = 0; oc < co; ++oc) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t b = 0; b < n; ++b)
        for (int64_t c = 0; c < ci; ++c)
          plane_bwd_w_acc(dy + (b * co + oc) * out_sz, packed.data() + (b * ci + c) * g.size(), g,
                          acc.data() + c * taps);
      for (int64_t t = 0; t < ci * taps; ++t) dw[oc * ci * taps + t] = static_cast<float>(acc[t]);
    }
  }
  return kOk;
}

}  // namespace

#define EFFNET_EXPORT(name, impl, stride)                                                                   \
  extern "C" int name(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, \
                      void *) {                                                                             \
    return impl(nparam, params, ndims, shapes, dtypes, stride);                                            \
  }

EFFNET_EXPORT(effnet_dw_fwd_s1, dw_fwd, 1)
EFFNET_EXPORT(effnet_dw_fwd_s2, dw_fwd, 2)
EFFNET_EXPORT(effnet_dw_bwd_x_s1, dw_bwd_x, 1)
EFFNET_EXPORT(effnet_dw_bwd_x_s2, dw_bwd_x, 2)
EFFNET_EXPORT(effnet_dw_bwd_w_s1, dw_bwd_w, 1)
EFFNET_EXPORT(effnet_dw_bwd_w_s2, dw_bwd_w, 2)
EFFNET_EXPORT(effnet_dense_fwd_s1, dense_fwd, 1)
EFFNET_EXPORT(effnet_dense_fwd_s2, dense_fwd, 2)
EFFNET_EXPORT(effnet_dense_bwd_x_s1, dense_bwd_x, 1)
EFFNET_EXPORT(effnet_dense_bwd_x_s2, dense_bwd_x, 2)
EFFNET_EXPORT(effnet_dense_bwd_w_s1, dense_bwd_w, 1)
EFFNET_EXPORT(effnet_dense_bwd_w_s2, dense_bwd_w, 2)
