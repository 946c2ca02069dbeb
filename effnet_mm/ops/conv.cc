// Fast CPU k x k convolutions with TensorFlow "SAME" padding for MindSpore `ops.Custom(func_type="aot")`.
//
// MindSpore 2.10 on CPU hands every k x k conv to oneDNN's reference kernel; these direct kernels replace it for
// EfficientNet's depthwise convs and its dense stem.  Layout is NCHW float32, weights (out, in / groups, k, k).
//
// Conventions (signature, return codes, threads) are those of kernels.h.  The stride and the padding (TF "SAME", or
// symmetric k / 2 like PyTorch) are part of the function name; the kernel size and the pads follow from the shapes.
//
// Speed comes from one idea: every plane is first copied into a zero-padded buffer whose columns are split by
// phase (column % stride), so every inner loop over output columns reads and writes contiguous memory and
// vectorises for stride 1 and 2 alike; planes (or output channels) are spread over OpenMP threads, and every output
// element is computed by exactly one work item in a fixed order, so results do not depend on timing or threads.
#include <algorithm>
#include <vector>

#include "gemm.h"
#include "kernels.h"

namespace {

using effnet::all_float32;
using effnet::kBadArgs;
using effnet::kBadDtype;
using effnet::kBadShape;
using effnet::threads_for;
using effnet::kOk;

// Output columns per vector chunk of the specialised kernels (one AVX-512 register, two AVX2 registers).
constexpr int kVec = 16;
constexpr int64_t kSlack = kVec;
// Work items (planes or channels) per parallel_for range.  Results do not depend on it, because every output
// element (and every weight-gradient channel, summed over the batch in order) is owned by one work item.
constexpr int kChunk = 4;


// GCC/Clang vector extension: kVec floats kept in registers (one zmm with AVX-512, split by the compiler otherwise).
typedef float VecF __attribute__((vector_size(kVec * sizeof(float))));

inline VecF load_vec(const float *p) {
  VecF v;
  std::memcpy(&v, p, sizeof(v));  // unaligned load
  return v;
}

inline void store_vec(float *p, VecF v) { std::memcpy(p, &v, sizeof(v)); }

// Stores the first min(n, kVec) lanes of v.
inline void store_chunk(float *p, VecF v, int64_t n) {
  if (n >= kVec) {
    store_vec(p, v);
    return;
  }
#if defined(__AVX512F__)
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), (__m512)v);
#else
  float lanes[kVec];
  store_vec(lanes, v);
  std::memcpy(p, lanes, sizeof(float) * n);
#endif
}

typedef double VecD __attribute__((vector_size(kVec * sizeof(double))));

// Per-thread scratch buffers, reused across calls (grown, never shrunk).
thread_local std::vector<float> t_buf;
thread_local std::vector<double> t_acc;
thread_local std::vector<VecF> t_facc;

template <typename T>
T *scratch(std::vector<T> &v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Weight gradients accumulate kVec float lanes per tap over a few planes (facc[t]), are widened to double lanes
// (acc[t * kVec + lane]) every kWidenEvery output pixels, and the lanes are summed once per channel at the end.  Small
// late-stage planes (7x7, or 2x2 at 64 px input) would otherwise pay the widening per plane.
constexpr int64_t kWidenEvery = 4096;

void widen_taps(VecF *facc, int64_t taps, double *acc) {
  for (int64_t t = 0; t < taps; ++t) {
    VecD sum;
    std::memcpy(&sum, acc + t * kVec, sizeof(sum));
    sum += __builtin_convertvector(facc[t], VecD);
    std::memcpy(acc + t * kVec, &sum, sizeof(sum));
    facc[t] = VecF{};
  }
}

void reduce_taps(const double *acc, int64_t taps, float *dw) {
  for (int64_t t = 0; t < taps; ++t) {
    double total = 0.0;
    for (int i = 0; i < kVec; ++i) total += acc[t * kVec + i];
    dw[t] = static_cast<float>(total);
  }
}

// Geometry of one spatial plane and its phase-split padded copy.
struct Plane {
  int64_t h, w;      // input size
  int64_t ho, wo;    // output size: ceil(in / stride)
  int64_t k, s;      // kernel size, stride
  int64_t pt, pl;    // pads before (top, left): TF SAME (the odd pixel goes after) or symmetric k / 2
  int64_t hp, wq;    // padded rows; columns per phase
  // Buffer floats: the phase-split plane plus zeroed slack, so a full vector chunk may run past the last column.
  int64_t size() const { return s * hp * wq + kSlack; }
};

int64_t same_pad_before(int64_t in, int64_t out, int64_t k, int64_t s) {
  const int64_t total = (out - 1) * s + k - in;
  return total > 0 ? total / 2 : 0;
}

// `symmetric`: PyTorch-style padding of k / 2 on every side, output (in + 2 (k / 2) - k) / s + 1; else TF "SAME".
bool make_plane(int64_t h, int64_t w, int64_t ho, int64_t wo, int64_t k, int64_t s, bool symmetric, Plane *g) {
  if (h <= 0 || w <= 0 || k <= 0 || k > 15 || (s != 1 && s != 2)) return false;
  if (symmetric) {
    const int64_t p = k / 2;
    if (h + 2 * p < k || w + 2 * p < k || ho != (h + 2 * p - k) / s + 1 || wo != (w + 2 * p - k) / s + 1) return false;
  } else if (ho != (h + s - 1) / s || wo != (w + s - 1) / s) {
    return false;
  }
  g->h = h;
  g->w = w;
  g->ho = ho;
  g->wo = wo;
  g->k = k;
  g->s = s;
  g->pt = symmetric ? k / 2 : same_pad_before(h, ho, k, s);
  g->pl = symmetric ? k / 2 : same_pad_before(w, wo, k, s);
  g->hp = (ho - 1) * s + k;
  g->wq = wo + (k - 1) / s;
  return true;
}

// dst[j] = src[2 * j] for j < n; src is read up to src[2 * n - 1].
inline void take_even(const float *src, int64_t n, float *dst) {
  int64_t j = 0;
#if defined(__AVX512F__)
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (; j + 16 <= n; j += 16) {
    const __m512 lo = _mm512_loadu_ps(src + 2 * j), hi = _mm512_loadu_ps(src + 2 * j + 16);
    _mm512_storeu_ps(dst + j, _mm512_permutex2var_ps(lo, even, hi));
  }
#endif
  for (; j < n; ++j) dst[j] = src[2 * j];
}

// Copy one input plane into the phase-split padded buffer: buf[p][r][j] = f(x[r - pt][j * s + p - pl]) (0 outside)
// with `row_fn(src, n, dst)` writing f of n contiguous values, and zero the slack after it (vector chunks read into
// it; its products must be finite zeros).  With stride 2 a row goes through f into `row` (w + 1 floats) before its
// columns are split by phase.
template <typename RowFn>
void pack_with(const float *x, const Plane &g, float *buf, float *row, RowFn &&row_fn) {
  std::memset(buf + g.s * g.hp * g.wq, 0, sizeof(float) * kSlack);
  // Columns j with 0 <= j * s + p - pl < w hold data in phase p: [j0[p], j1[p]); the rest is padding.
  int64_t j0[2], j1[2];
  for (int64_t p = 0; p < g.s; ++p) {
    j0[p] = std::min<int64_t>(g.wq, std::max<int64_t>(0, (g.pl - p + g.s - 1) / g.s));
    j1[p] = std::max<int64_t>(j0[p], std::min<int64_t>(g.wq, (g.w - p + g.pl + g.s - 1) / g.s));
  }
  for (int64_t r = 0; r < g.hp; ++r) {
    const int64_t ih = r - g.pt;
    if (ih < 0 || ih >= g.h) {
      for (int64_t p = 0; p < g.s; ++p) std::memset(buf + (p * g.hp + r) * g.wq, 0, sizeof(float) * g.wq);
      continue;
    }
    if (g.s == 2) row_fn(x + ih * g.w, g.w, row);
    for (int64_t p = 0; p < g.s; ++p) {
      float *dst = buf + (p * g.hp + r) * g.wq;
      for (int64_t j = 0; j < j0[p]; ++j) dst[j] = 0.0f;
      if (g.s == 1) {
        row_fn(x + ih * g.w + j0[p] - g.pl, j1[p] - j0[p], dst + j0[p]);
      } else {  // column j of the phase is row[j * 2 + p - pl]
        take_even(row + 2 * j0[p] + p - g.pl, j1[p] - j0[p], dst + j0[p]);
      }
      for (int64_t j = j1[p]; j < g.wq; ++j) dst[j] = 0.0f;
    }
  }
}

thread_local std::vector<float> t_row;

void pack(const float *x, const Plane &g, float *buf) {
  const auto copy = [](const float *src, int64_t n, float *dst) { std::memcpy(dst, src, sizeof(float) * n); };
  pack_with(x, g, buf, g.s == 2 ? scratch(t_row, g.w + 1) : nullptr, copy);
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
    // Column iw sits at phase (iw + pl) % s, index (iw + pl) / s; no columns lie past the last window.
    if (g.s == 1) {
      std::memcpy(dst, dbuf + r * g.wq + g.pl, sizeof(float) * g.w);
      continue;
    }
    const float *even = dbuf + r * g.wq, *odd = dbuf + (g.hp + r) * g.wq;
    int64_t iw = 0;
    if (g.pl % 2) dst[iw++] = odd[g.pl / 2];  // the first column is odd: (0 + pl) is odd (pl = 3 for k7 SAME)
    for (; iw + 1 < g.w; iw += 2) {
      const int64_t j = (iw + g.pl) / 2;
      dst[iw] = even[j];
      dst[iw + 1] = odd[j];
    }
    if (iw < g.w) dst[iw] = ((iw + g.pl) % 2 ? odd : even)[(iw + g.pl) / 2];
  }
}

// Pointer to the padded row feeding output row `oh` through tap (kh, kw), already shifted to output column 0.
inline const float *tap_row(const float *buf, const Plane &g, int64_t oh, int64_t kh, int64_t kw) {
  return buf + ((kw % g.s) * g.hp + oh * g.s + kh) * g.wq + kw / g.s;
}

inline float *tap_row(float *buf, const Plane &g, int64_t oh, int64_t kh, int64_t kw) {
  return buf + ((kw % g.s) * g.hp + oh * g.s + kh) * g.wq + kw / g.s;
}

// The same with the stride known at compile time (no division in the unrolled tap loops).
template <int S>
inline const float *tap_row_s(const float *buf, const Plane &g, int64_t oh, int kh, int kw) {
  return buf + ((kw % S) * g.hp + oh * S + kh) * g.wq + kw / S;
}

// y[oh][:] += sum over taps of w[kh][kw] * x_padded[...]; y must be zeroed (or hold a partial sum).
void plane_fwd_generic(const float *buf, const float *wk, const Plane &g, float *y) {
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
void plane_bwd_x_generic(const float *dy, const float *wk, const Plane &g, float *dbuf) {
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

// Lane 0 of tap (kh, kw)'s accumulator (see widen_taps) += sum over the plane of dy * x_padded shifted by the tap.
void plane_bwd_w_generic(const float *dy, const float *buf, const Plane &g, VecF *acc) {
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
      acc[kh * g.k + kw][0] += total;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Specialisations for compile-time K and S (all EfficientNet convs): the taps are unrolled and each chunk of kVec
// output columns stays in registers across all K * K taps instead of being re-loaded and re-stored per tap, which
// matters most for the small 7x7 / 14x14 planes of the late stages.  Chunks may read up to kVec - 1 columns past
// the row (into the next row or the zeroed slack); those lanes are never stored, or are multiplied by zero.

// y += conv(x_padded, w) with kAdd (y zeroed or holding a partial sum; a row's last chunk added column by column),
// else y = conv(x_padded, w) written once, a row's last chunk as one masked store (the eval stage's planes: no zeroing,
// no read-back, and a 14-wide row is all tail).
template <int K, int S, bool kAdd>
void plane_fwd_t(const float *buf, const float *wk, const Plane &g, float *y) {
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    float *yr = y + oh * g.wo;
    for (int64_t ow0 = 0; ow0 < g.wo; ow0 += kVec) {
      VecF acc = {};
      for (int kh = 0; kh < K; ++kh) {
        for (int kw = 0; kw < K; ++kw) acc += wk[kh * K + kw] * load_vec(tap_row_s<S>(buf, g, oh, kh, kw) + ow0);
      }
      const int64_t n = g.wo - ow0 < kVec ? g.wo - ow0 : kVec;
      if (!kAdd) {
        store_chunk(yr + ow0, acc, n);
      } else if (n == kVec) {
        store_vec(yr + ow0, load_vec(yr + ow0) + acc);
      } else {
        for (int64_t i = 0; i < n; ++i) yr[ow0 + i] += acc[i];
      }
    }
  }
}

void plane_fwd_set_generic(const float *buf, const float *wk, const Plane &g, float *y) {
  std::memset(y, 0, sizeof(float) * g.ho * g.wo);
  plane_fwd_generic(buf, wk, g, y);
}

// Loads kVec values of a dy row starting at ow0, zero beyond the row end.
inline VecF load_row_chunk(const float *row, int64_t ow0, int64_t wo) {
  const int64_t n = wo - ow0 < kVec ? wo - ow0 : kVec;
  if (n == kVec) return load_vec(row + ow0);
  float part[kVec] = {};
  std::memcpy(part, row + ow0, sizeof(float) * n);
  return load_vec(part);
}

// Gather form of the transposed conv: each chunk of the padded gradient buffer sums its K * K / S^2 contributing
// taps in registers and is stored once (a scatter would load and store the buffer once per tap).  dy is first copied
// into zero-bordered rows so the shifted reads need no bounds checks.
template <int K, int S>
void plane_bwd_x_t(const float *dy, const float *wk, const Plane &g, float *dbuf) {
  constexpr int64_t lp = (K - 1) / S;  // left border of the dy copy: the largest tap shift kw / S
  const int64_t row_len = g.wo + 2 * lp + kVec;
  static thread_local std::vector<float> dyp;
  dyp.assign(g.ho * row_len, 0.0f);
  for (int64_t oh = 0; oh < g.ho; ++oh) std::memcpy(&dyp[oh * row_len + lp], dy + oh * g.wo, sizeof(float) * g.wo);
  for (int64_t p = 0; p < S; ++p) {
    for (int64_t r = 0; r < g.hp; ++r) {
      float *dst = dbuf + (p * g.hp + r) * g.wq;
      for (int64_t j0 = 0; j0 < g.wq; j0 += kVec) {
        VecF acc = {};
        for (int kh = 0; kh < K; ++kh) {
          const int64_t t = r - kh;
          if (t < 0 || t % S != 0 || t / S >= g.ho) continue;
          const float *src = dyp.data() + (t / S) * row_len + lp + j0;
          for (int kw = static_cast<int>(p); kw < K; kw += S) acc += wk[kh * K + kw] * load_vec(src - kw / S);
        }
        const int64_t n = g.wq - j0 < kVec ? g.wq - j0 : kVec;
        if (n == kVec) {
          store_vec(dst + j0, load_vec(dst + j0) + acc);
        } else {
          for (int64_t i = 0; i < n; ++i) dst[j0 + i] += acc[i];
        }
      }
    }
  }
}

template <int K, int S>
void plane_bwd_w_t(const float *dy, const float *buf, const Plane &g, VecF *acc_out) {
  VecF acc[K * K];
  for (int t = 0; t < K * K; ++t) acc[t] = acc_out[t];
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const float *dyr = dy + oh * g.wo;
    for (int64_t ow0 = 0; ow0 < g.wo; ow0 += kVec) {
      const VecF d = load_row_chunk(dyr, ow0, g.wo);
      for (int kh = 0; kh < K; ++kh) {
        for (int kw = 0; kw < K; ++kw) acc[kh * K + kw] += d * load_vec(tap_row_s<S>(buf, g, oh, kh, kw) + ow0);
      }
    }
  }
  for (int t = 0; t < K * K; ++t) acc_out[t] = acc[t];
}

using FwdFn = void (*)(const float *, const float *, const Plane &, float *);
using BwdWFn = void (*)(const float *, const float *, const Plane &, VecF *);

template <int K, int S>
struct Kernels {
  static constexpr FwdFn fwd = plane_fwd_t<K, S, true>;
  static constexpr FwdFn bwd_x = plane_bwd_x_t<K, S>;
  static constexpr BwdWFn bwd_w = plane_bwd_w_t<K, S>;
  static constexpr FwdFn fwd_set = plane_fwd_t<K, S, false>;
};

struct PlaneKernels {
  FwdFn fwd;    // y += conv(x_padded, w)
  FwdFn bwd_x;  // dbuf += conv_transpose(dy, w)
  BwdWFn bwd_w; // acc += correlate(dy, x_padded)
  FwdFn fwd_set;  // y = conv(x_padded, w)
};

template <int K, int S>
PlaneKernels specialised() {
  return {Kernels<K, S>::fwd, Kernels<K, S>::bwd_x, Kernels<K, S>::bwd_w, Kernels<K, S>::fwd_set};
}

// Specialised kernels for k in {3, 5, 7} and stride in {1, 2}; the generic loops otherwise.
PlaneKernels select_kernels(const Plane &g) {
  const int64_t key = g.k * 10 + g.s;
  switch (key) {
    case 31: return specialised<3, 1>();
    case 32: return specialised<3, 2>();
    case 51: return specialised<5, 1>();
    case 52: return specialised<5, 2>();
    case 71: return specialised<7, 1>();
    case 72: return specialised<7, 2>();
    default: return {plane_fwd_generic, plane_bwd_x_generic, plane_bwd_w_generic, plane_fwd_set_generic};
  }
}

bool is_4d(int nparam, const int *ndims) {
  for (int i = 0; i < nparam; ++i) {
    if (ndims[i] != 4) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Depthwise convs on narrow planes: at most kNarrowMaxWo output columns (7x7 at 224 px input; 8x8, 4x4 and 2x2
// at 64 px).  There the row kernels above leave most of a vector's lanes idle and pay their per-plane work for a
// handful of outputs.  These kernels take kVec channels at a time instead, in a zero-padded channel-last tile
// (tile[(row * wp + col) * kVec + lane] holds channel c0 + lane), so every tap of every output is one full-vector
// multiply-add.  Lanes past the last channel hold zeros and are never stored.
//
// The weight gradient gains from the tiles on wider maps too: its row kernel accumulates every tap across a plane's
// rows and widens them per plane, where the tile kernel keeps one vector per tap over a whole channel block (measured
// 1.3-2.5x faster up to 19x19 outputs, k3 and k5, s1 and s2; the forward and the input gradient were equal or
// slower there).

constexpr int64_t kNarrowMaxWo = 8;
// (28x28 planes: 1.2-1.4x slower on tiles, 56x56: 1.9x slower.)
constexpr int64_t kNarrowMaxWoGradW = 20;

bool narrow(const Plane &g) { return g.wo <= kNarrowMaxWo; }
bool narrow_for_grad_w(const Plane &g) { return g.wo <= kNarrowMaxWoGradW; }

// Padded tile size (no phase split): rows hp, columns wp = (wo - 1) * s + k.
int64_t tile_cols(const Plane &g) { return (g.wo - 1) * g.s + g.k; }

// Planes x[l * plane_stride] (l < nc) into the zero-padded tile; input rows/columns no window reaches are dropped.
void pack_tile(const float *x, int64_t plane_stride, int64_t nc, const Plane &g, float *tile) {
  const int64_t wp = tile_cols(g);
  std::memset(tile, 0, sizeof(float) * g.hp * wp * kVec);
  for (int64_t l = 0; l < nc; ++l) {
    const float *plane = x + l * plane_stride;
    for (int64_t ih = 0; ih < g.h && ih + g.pt < g.hp; ++ih) {
      float *dst = tile + ((ih + g.pt) * wp + g.pl) * kVec + l;
      const int64_t cols = std::min<int64_t>(g.w, wp - g.pl);
      for (int64_t iw = 0; iw < cols; ++iw) dst[iw * kVec] = plane[ih * g.w + iw];
    }
  }
}

// The inverse for gradients: plane l of dx = the tile's interior (zero where no window reached).
void unpack_tile(const float *tile, int64_t plane_stride, int64_t nc, const Plane &g, float *dx) {
  const int64_t wp = tile_cols(g);
  for (int64_t l = 0; l < nc; ++l) {
    float *plane = dx + l * plane_stride;
    for (int64_t ih = 0; ih < g.h; ++ih) {
      for (int64_t iw = 0; iw < g.w; ++iw) {
        const int64_t r = ih + g.pt, col = iw + g.pl;
        plane[ih * g.w + iw] = r < g.hp && col < wp ? tile[(r * wp + col) * kVec + l] : 0.0f;
      }
    }
  }
}

// vec[p] lane l = planes[l * plane_stride + p] for p < count (lanes l >= nc zero), and back.
void gather_lanes(const float *planes, int64_t plane_stride, int64_t nc, int64_t count, VecF *vec) {
  std::fill(vec, vec + count, VecF{});
  for (int64_t l = 0; l < nc; ++l)
    for (int64_t p = 0; p < count; ++p) vec[p][l] = planes[l * plane_stride + p];
}

void scatter_lanes(const VecF *vec, int64_t plane_stride, int64_t nc, int64_t count, float *planes) {
  for (int64_t l = 0; l < nc; ++l)
    for (int64_t p = 0; p < count; ++p) planes[l * plane_stride + p] = vec[p][l];
}

// K, S = 0: taken from the plane at run time.
template <int K, int S>
void tile_fwd(const float *tile, const VecF *wv, const Plane &g, VecF *out) {
  const int64_t k = K ? K : g.k, s = S ? S : g.s, wp = tile_cols(g);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      const float *base = tile + (oh * s * wp + ow * s) * kVec;
      VecF acc = {};
      for (int64_t kh = 0; kh < k; ++kh)
        for (int64_t kw = 0; kw < k; ++kw) acc += wv[kh * k + kw] * load_vec(base + (kh * wp + kw) * kVec);
      out[oh * g.wo + ow] = acc;
    }
  }
}

// dtile (zeroed) += transposed conv of the gradient dyv with the per-lane taps wv.
template <int K, int S>
void tile_bwd_x(const VecF *dyv, const VecF *wv, const Plane &g, float *dtile) {
  const int64_t k = K ? K : g.k, s = S ? S : g.s, wp = tile_cols(g);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      float *base = dtile + (oh * s * wp + ow * s) * kVec;
      const VecF d = dyv[oh * g.wo + ow];
      for (int64_t kh = 0; kh < k; ++kh) {
        for (int64_t kw = 0; kw < k; ++kw) {
          float *p = base + (kh * wp + kw) * kVec;
          store_vec(p, load_vec(p) + wv[kh * k + kw] * d);
        }
      }
    }
  }
}

// facc[tap] += sum over the outputs of dy * the input the tap reads, per lane (channel).
template <int K, int S>
void tile_bwd_w(const VecF *dyv, const float *tile, const Plane &g, VecF *facc) {
  const int64_t k = K ? K : g.k, s = S ? S : g.s, wp = tile_cols(g);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      const float *base = tile + (oh * s * wp + ow * s) * kVec;
      const VecF d = dyv[oh * g.wo + ow];
      for (int64_t kh = 0; kh < k; ++kh)
        for (int64_t kw = 0; kw < k; ++kw) facc[kh * k + kw] += d * load_vec(base + (kh * wp + kw) * kVec);
    }
  }
}

struct TileKernels {
  void (*fwd)(const float *, const VecF *, const Plane &, VecF *);
  void (*bwd_x)(const VecF *, const VecF *, const Plane &, float *);
  void (*bwd_w)(const VecF *, const float *, const Plane &, VecF *);
};

template <int K, int S>
TileKernels tile_specialised() {
  return {tile_fwd<K, S>, tile_bwd_x<K, S>, tile_bwd_w<K, S>};
}

TileKernels select_tile_kernels(const Plane &g) {
  switch (g.k * 10 + g.s) {
    case 31: return tile_specialised<3, 1>();
    case 32: return tile_specialised<3, 2>();
    case 51: return tile_specialised<5, 1>();
    case 52: return tile_specialised<5, 2>();
    case 71: return tile_specialised<7, 1>();
    case 72: return tile_specialised<7, 2>();
    default: return tile_specialised<0, 0>();
  }
}

thread_local std::vector<VecF> t_lanes, t_taps;

// fn(b, c0, nc, wv) for every sample b and block of nc <= kVec channels from c0, in parallel, with wv the block's taps
// (one vector per tap, a lane per channel).  Work item i is block i / n of sample i % n, so a thread's consecutive
// items share the taps, gathered once per block.
template <typename F>
void for_each_sample_block(const float *w, const Plane &g, int64_t n, int64_t c, F &&fn) {
  const int64_t taps = g.k * g.k, blocks = (c + kVec - 1) / kVec;
  const int threads = threads_for(n * c * (g.h * g.w + g.ho * g.wo));
  effnet::parallel_for(blocks * n, kChunk, threads, [&](int64_t begin, int64_t end) {
    VecF *wv = scratch(t_taps, taps);
    int64_t loaded = -1;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t block = i / n, c0 = block * kVec, nc = std::min<int64_t>(kVec, c - c0);
      if (block != loaded) gather_lanes(w + c0 * taps, taps, nc, taps, wv);
      loaded = block;
      fn(i % n, c0, nc, wv);
    }
  });
}

void dw_fwd_narrow(const float *x, const float *w, const Plane &g, int64_t n, int64_t c, float *y) {
  const TileKernels kern = select_tile_kernels(g);
  const int64_t in_sz = g.h * g.w, out_sz = g.ho * g.wo;
  for_each_sample_block(w, g, n, c, [&](int64_t b, int64_t c0, int64_t nc, const VecF *wv) {
    float *tile = scratch(t_buf, g.hp * tile_cols(g) * kVec);
    VecF *out = scratch(t_lanes, out_sz);
    pack_tile(x + (b * c + c0) * in_sz, in_sz, nc, g, tile);
    kern.fwd(tile, wv, g, out);
    scatter_lanes(out, out_sz, nc, out_sz, y + (b * c + c0) * out_sz);
  });
}

void dw_bwd_x_narrow(const float *dy, const float *w, const Plane &g, int64_t n, int64_t c, float *dx) {
  const TileKernels kern = select_tile_kernels(g);
  const int64_t in_sz = g.h * g.w, out_sz = g.ho * g.wo, tile_sz = g.hp * tile_cols(g) * kVec;
  for_each_sample_block(w, g, n, c, [&](int64_t b, int64_t c0, int64_t nc, const VecF *wv) {
    float *dtile = scratch(t_buf, tile_sz);
    VecF *dyv = scratch(t_lanes, out_sz);
    gather_lanes(dy + (b * c + c0) * out_sz, out_sz, nc, out_sz, dyv);
    std::memset(dtile, 0, sizeof(float) * tile_sz);
    kern.bwd_x(dyv, wv, g, dtile);
    unpack_tile(dtile, in_sz, nc, g, dx + (b * c + c0) * in_sz);
  });
}

// One channel block per work item, the batch summed in order (widened to double as in dw_bwd_w): deterministic.
void dw_bwd_w_narrow(const float *dy, const float *x, const Plane &g, int64_t n, int64_t c, float *dw) {
  const TileKernels kern = select_tile_kernels(g);
  const int64_t taps = g.k * g.k, in_sz = g.h * g.w, out_sz = g.ho * g.wo, blocks = (c + kVec - 1) / kVec;
  effnet::parallel_for(blocks, 1, threads_for(n * c * (in_sz + out_sz)), [&](int64_t begin, int64_t end) {
    float *tile = scratch(t_buf, g.hp * tile_cols(g) * kVec);
    VecF *dyv = scratch(t_lanes, out_sz);
    VecF *facc = scratch(t_facc, taps);
    double *acc = scratch(t_acc, taps * kVec);
    for (int64_t block = begin; block < end; ++block) {
      const int64_t c0 = block * kVec, nc = std::min<int64_t>(kVec, c - c0);
      std::fill(acc, acc + taps * kVec, 0.0);
      std::fill(facc, facc + taps, VecF{});
      int64_t pending = 0;
      for (int64_t b = 0; b < n; ++b) {
        pack_tile(x + (b * c + c0) * in_sz, in_sz, nc, g, tile);
        gather_lanes(dy + (b * c + c0) * out_sz, out_sz, nc, out_sz, dyv);
        kern.bwd_w(dyv, tile, g, facc);
        pending += out_sz;
        if (pending >= kWidenEvery || b == n - 1) {
          widen_taps(facc, taps, acc);
          pending = 0;
        }
      }
      for (int64_t l = 0; l < nc; ++l)
        for (int64_t t = 0; t < taps; ++t) dw[(c0 + l) * taps + t] = static_cast<float>(acc[t * kVec + l]);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Depthwise: x (N, C, H, W), w (C, 1, K, K), y (N, C, Ho, Wo).

// The checks of every depthwise entry point: `expected` params, all 4-d float32, x / w / y (or dx / w / dy) at the
// given indices with matching shapes.  Fills n, c and the plane geometry.
int parse_depthwise(int nparam, int *ndims, int64_t **shapes, const char **dtypes, int expected, int xi, int wi,
                    int yi, int64_t s, bool sym, int64_t *n, int64_t *c, Plane *g) {
  if (nparam != expected || !is_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *xs = shapes[xi], *ws = shapes[wi], *ys = shapes[yi];
  *n = xs[0];
  *c = xs[1];
  const int64_t k = ws[2];
  if (ws[0] != *c || ws[1] != 1 || ws[3] != k || ys[0] != *n || ys[1] != *c ||
      !make_plane(xs[2], xs[3], ys[2], ys[3], k, s, sym, g))
    return kBadShape;
  return kOk;
}

int dw_fwd(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s, bool sym) {
  int64_t n, c;
  Plane g;
  const int status = parse_depthwise(nparam, ndims, shapes, dtypes, 3, 0, 1, 2, s, sym, &n, &c, &g);
  if (status != kOk) return status;
  const int64_t k = g.k;
  const PlaneKernels kern = select_kernels(g);
  const float *x = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  if (narrow(g)) {
    dw_fwd_narrow(x, w, g, n, c, y);
    return kOk;
  }
  const int64_t in_sz = g.h * g.w, out_sz = g.ho * g.wo, planes = n * c;
  effnet::parallel_for(planes, kChunk, threads_for(planes * (in_sz + out_sz)), [&](int64_t begin, int64_t end) {
    float *buf = scratch(t_buf, g.size());
    for (int64_t i = begin; i < end; ++i) {
      pack(x + i * in_sz, g, buf);
      float *yp = y + i * out_sz;
      std::memset(yp, 0, sizeof(float) * out_sz);
      kern.fwd(buf, w + (i % c) * k * k, g, yp);
    }
  });
  return kOk;
}

// Inputs dy, w, x (shape only); output dx.
int dw_bwd_x(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s, bool sym) {
  int64_t n, c;
  Plane g;
  const int status = parse_depthwise(nparam, ndims, shapes, dtypes, 4, 3, 1, 0, s, sym, &n, &c, &g);
  if (status != kOk) return status;
  const int64_t k = g.k;
  const PlaneKernels kern = select_kernels(g);
  const float *dy = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[3]);
  if (narrow(g)) {
    dw_bwd_x_narrow(dy, w, g, n, c, dx);
    return kOk;
  }
  const int64_t in_sz = g.h * g.w, out_sz = g.ho * g.wo, planes = n * c;
  effnet::parallel_for(planes, kChunk, threads_for(planes * (in_sz + out_sz)), [&](int64_t begin, int64_t end) {
    float *dbuf = scratch(t_buf, g.size());
    for (int64_t i = begin; i < end; ++i) {
      std::memset(dbuf, 0, sizeof(float) * g.size());
      kern.bwd_x(dy + i * out_sz, w + (i % c) * k * k, g, dbuf);
      unpack(dbuf, g, dx + i * in_sz);
    }
  });
  return kOk;
}

// Inputs dy, x, w (shape only); output dw.  One channel per task, batch summed in order: deterministic.
int dw_bwd_w(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s, bool sym) {
  int64_t n, c;
  Plane g;
  const int status = parse_depthwise(nparam, ndims, shapes, dtypes, 4, 1, 3, 0, s, sym, &n, &c, &g);
  if (status != kOk) return status;
  const int64_t k = g.k;
  const PlaneKernels kern = select_kernels(g);
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  float *dw = static_cast<float *>(params[3]);
  if (narrow_for_grad_w(g)) {
    dw_bwd_w_narrow(dy, x, g, n, c, dw);
    return kOk;
  }
  const int64_t in_sz = g.h * g.w, out_sz = g.ho * g.wo;
  const int64_t taps = k * k;
  effnet::parallel_for(c, kChunk, threads_for(n * c * (in_sz + out_sz)), [&](int64_t begin, int64_t end) {
    float *buf = scratch(t_buf, g.size());
    double *acc = scratch(t_acc, taps * kVec);
    VecF *facc = scratch(t_facc, taps);
    for (int64_t ch = begin; ch < end; ++ch) {
      std::fill(acc, acc + taps * kVec, 0.0);
      std::fill(facc, facc + taps, VecF{});
      int64_t pending = 0;
      for (int64_t b = 0; b < n; ++b) {
        const int64_t i = b * c + ch;
        pack(x + i * in_sz, g, buf);
        kern.bwd_w(dy + i * out_sz, buf, g, facc);
        pending += out_sz;
        if (pending >= kWidenEvery || b == n - 1) {
          widen_taps(facc, taps, acc);
          pending = 0;
        }
      }
      reduce_taps(acc, taps, dw + ch * taps);
    }
  });
  return kOk;
}

// ---------------------------------------------------------------------------------------------------------------
// The inference form of an MBConv block's depthwise stage, in one pass over its large tensors:
//     y = silu(bn2(depthwise(silu(bn1(x)), w))),    pooled = mean of y over (H, W)  (the SE squeeze)
// both BatchNorms on given (moving) statistics.  Inputs x, w, then gamma2, beta2, stats2 (2, C), eps2 (1) and, for a
// block with an expansion conv, gamma1, beta1, stats1, eps1 (x is then that conv's output before its BN); outputs y
// (N, C, Ho, Wo) and pooled (N, C, 1, 1).  Separately these are three more passes over the expanded activations
// (BN + SiLU of x, BN + SiLU of y, the mean).  The per-channel constants, the conv and the mean are those of the
// separate kernels (effnet::bn_channel, the plane/tile kernels above, effnet::plane_mean).

thread_local std::vector<float> t_act, t_hidden, t_gate;
thread_local std::vector<double> t_logit;

// scale and shift of every channel of a BatchNorm.
void bn_constants(const effnet::BnParams &bn, int64_t c, std::vector<float> *scale, std::vector<float> *shift) {
  scale->resize(c);
  shift->resize(c);
  for (int64_t ch = 0; ch < c; ++ch) {
    const effnet::BnChannel k = bn.channel(c, ch);
    (*scale)[ch] = k.scale;
    (*shift)[ch] = k.shift;
  }
}

// The SE excitation parameters among a kernel's inputs, from `first`: w1 (R, C, 1, 1), b1 (R), w2 (C, R, 1, 1),
// b2 (C) of its reduce and expand 1x1 convs.
struct SeParams {
  const float *w1, *b1, *w2, *b2;
  int64_t r;
};

bool parse_se_params(void **params, const int *ndims, int64_t **shapes, int first, int64_t c, SeParams *se) {
  const int64_t *w1 = shapes[first], *w2 = shapes[first + 2];
  const int64_t r = w1[0];
  if (ndims[first] != 4 || ndims[first + 1] != 1 || ndims[first + 2] != 4 || ndims[first + 3] != 1 || r < 1 ||
      w1[1] != c || w1[2] != 1 || w1[3] != 1 || shapes[first + 1][0] != r || w2[0] != c || w2[1] != r ||
      w2[2] != 1 || w2[3] != 1 || shapes[first + 3][0] != c)
    return false;
  se->w1 = static_cast<const float *>(params[first]);
  se->b1 = static_cast<const float *>(params[first + 1]);
  se->w2 = static_cast<const float *>(params[first + 2]);
  se->b2 = static_cast<const float *>(params[first + 3]);
  se->r = r;
  return true;
}

// Gates of one image, gate = sigmoid(w2 silu(w1 pooled + b1) + b2), dot products in double; w2t is w2 transposed
// (R, C), so the expand products run along contiguous channels.
void se_gates(const SeParams &se, const float *w2t, const float *pooled, int64_t c, float *gate) {
  float *hidden = scratch(t_hidden, se.r);
  for (int64_t j = 0; j < se.r; ++j) {
    const float *row = se.w1 + j * c;
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < c; ++i) acc += static_cast<double>(row[i]) * pooled[i];
    hidden[j] = static_cast<float>(acc + se.b1[j]);
  }
  effnet::silu_span(hidden, se.r, 1.0f, 0.0f, hidden);
  double *logit = scratch(t_logit, c);
  for (int64_t ch = 0; ch < c; ++ch) logit[ch] = se.b2[ch];
  for (int64_t j = 0; j < se.r; ++j) {
    const float *row = w2t + j * c;
    const double h = hidden[j];
#pragma omp simd
    for (int64_t ch = 0; ch < c; ++ch) logit[ch] += row[ch] * h;
  }
  for (int64_t ch = 0; ch < c; ++ch) gate[ch] = effnet::sigmoid(static_cast<float>(logit[ch]));
}

// The depthwise stage of one layer in inference, applied to channel blocks or whole images; its per-channel constants
// are computed once per kernel call.  Every plane is computed the same way whatever the schedule.
struct StageEval {
  Plane g;
  int64_t c = 0, taps = 0, in_sz = 0, out_sz = 0;
  const float *w = nullptr;
  bool pre = false, tiles = false, has_se = false;
  std::vector<float> a1, b1, a2, b2;
  TileKernels tile_kern;
  PlaneKernels plane_kern;
  SeParams se{};
  std::vector<float> w2t;  // SE expand weights transposed (R, C)

  // Parses the parameters from index 2 (see dw_bn_silu_eval) for input planes h x w and output planes ho x wo.
  bool init(void **params, int *ndims, int64_t **shapes, int64_t channels, int64_t h, int64_t w_in, int64_t ho,
            int64_t wo, int64_t s, bool sym, bool with_pre, bool with_se) {
    const int64_t *ws = shapes[1];
    c = channels;
    w = static_cast<const float *>(params[1]);
    pre = with_pre;
    has_se = with_se;
    effnet::BnParams post, pre_bn;
    if (ndims[1] != 4 || ws[0] != c || ws[1] != 1 || ws[3] != ws[2] ||
        !make_plane(h, w_in, ho, wo, ws[2], s, sym, &g) || !effnet::parse_bn_params(params, ndims, shapes, 2, c, &post) ||
        (pre && !effnet::parse_bn_params(params, ndims, shapes, 6, c, &pre_bn)) ||
        (has_se && !parse_se_params(params, ndims, shapes, pre ? 10 : 6, c, &se)))
      return false;
    taps = g.k * g.k;
    in_sz = g.h * g.w;
    out_sz = g.ho * g.wo;
    tiles = narrow(g);
    tile_kern = select_tile_kernels(g);
    plane_kern = select_kernels(g);
    bn_constants(post, c, &a2, &b2);
    if (pre) bn_constants(pre_bn, c, &a1, &b1);
    if (has_se) {
      w2t.resize(se.r * c);
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t j = 0; j < se.r; ++j) w2t[j * c + ch] = se.w2[ch * se.r + j];
    }
    return true;
  }

  // Channels [c0, c0 + nc) of one image (nc <= kVec on tiles, wv then their taps): src holds their nc input planes,
  // y and pooled point at the image's channel 0.
  void channels(const float *src, int64_t c0, int64_t nc, float *y, float *pooled, const VecF *wv) const {
    if (tiles) {
      float *tile = scratch(t_buf, g.hp * tile_cols(g) * kVec);
      VecF *out = scratch(t_lanes, out_sz);
      if (pre) {
        float *act = scratch(t_act, nc * in_sz);
        for (int64_t l = 0; l < nc; ++l)
          effnet::silu_span(src + l * in_sz, in_sz, a1[c0 + l], b1[c0 + l], act + l * in_sz);
        src = act;
      }
      pack_tile(src, in_sz, nc, g, tile);
      tile_kern.fwd(tile, wv, g, out);
      scatter_lanes(out, out_sz, nc, out_sz, y + c0 * out_sz);
    }
    for (int64_t l = 0; l < nc; ++l) {
      const int64_t ch = c0 + l;
      float *yp = y + ch * out_sz;
      if (!tiles) {
        const float *plane = src + l * in_sz;
        if (pre) {  // whole planes: a SiLU pass costs per vector, and a short row ends in a part-filled one
          float *act = scratch(t_act, in_sz);
          effnet::silu_span(plane, in_sz, a1[ch], b1[ch], act);
          plane = act;
        }
        float *buf = scratch(t_buf, g.size());
        pack(plane, g, buf);
        plane_kern.fwd_set(buf, w + ch * taps, g, yp);
      }
      effnet::silu_span(yp, out_sz, a2[ch], b2[ch], yp);
      pooled[ch] = effnet::plane_mean(yp, out_sz);
    }
  }

  // The taps of channels [c0, c0 + nc) as tile lanes (tiles only).
  const VecF *block_taps(int64_t c0, int64_t nc) const {
    VecF *wv = scratch(t_taps, taps);
    if (tiles) gather_lanes(w + c0 * taps, taps, nc, taps, wv);
    return wv;
  }

  // Channels [c_begin, c_end) of one image times its SE gates.
  void excite(int64_t c_begin, int64_t c_end, float *y, const float *gate) const {
    for (int64_t ch = c_begin; ch < c_end; ++ch) {
      float *yp = y + ch * out_sz;
      const float v = gate[ch];
#pragma omp simd
      for (int64_t i = 0; i < out_sz; ++i) yp[i] *= v;
    }
  }

  // One whole image, on the calling thread: its planes, then (with the SE) its gated product while they are in cache.
  void image(const float *x, float *y, float *pooled) const {
    for (int64_t c0 = 0; c0 < c; c0 += kVec) {
      const int64_t nc = std::min<int64_t>(kVec, c - c0);
      channels(x + c0 * in_sz, c0, nc, y, pooled, block_taps(c0, nc));
    }
    if (has_se) {
      float *gate = scratch(t_gate, c);
      se_gates(se, w2t.data(), pooled, c, gate);
      excite(0, c, y, gate);
    }
  }

  // N images: one image per work item when there are enough for the threads, else planes (or channel blocks) in
  // parallel followed by the SE in a second parallel pass (single-image inference).
  void batch(const float *x, int64_t n, float *y, float *pooled) const {
    const int threads = threads_for(n * c * (in_sz + out_sz));
    if (has_se && n >= threads) {
      effnet::parallel_for(n, 1, threads, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) image(x + b * c * in_sz, y + b * c * out_sz, pooled + b * c);
      });
      return;
    }
    if (tiles) {
      for_each_sample_block(w, g, n, c, [&](int64_t b, int64_t c0, int64_t nc, const VecF *wv) {
        channels(x + (b * c + c0) * in_sz, c0, nc, y + b * c * out_sz, pooled + b * c, wv);
      });
    } else {
      effnet::parallel_for(n * c, kChunk, threads, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
          channels(x + i * in_sz, i % c, 1, y + i / c * c * out_sz, pooled + i / c * c, nullptr);
      });
    }
    if (!has_se) return;
    std::vector<float> gates(n * c);
    for (int64_t b = 0; b < n; ++b) se_gates(se, w2t.data(), pooled + b * c, c, gates.data() + b * c);
    effnet::parallel_for(n * c, kChunk, threads, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        excite(i % c, i % c + 1, y + i / c * c * out_sz, gates.data() + i / c * c);
    });
  }
};

// Inputs: x, w, the depthwise BN (gamma, beta, stats, eps) from 2, with kPre the expansion BN from 6, with kSE the SE
// convs (SeParams) after them; outputs y and pooled.  With kSE, y is gated by the SE and pooled is the mean before
// the gate (what the SE squeezed), and each image is one work item once there are enough images for the threads:
// its planes, its gates and the gated product while its planes are still in cache (a separate gate pass reads and
// writes all of y from memory once more).
template <bool kPre, bool kSE>
int dw_bn_silu_eval(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s,
                    bool sym) {
  if (nparam != (kPre ? 10 : 6) + (kSE ? 4 : 0) + 2) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int yi = nparam - 2, pi = nparam - 1;
  if (ndims[0] != 4 || ndims[yi] != 4 || ndims[pi] != 4) return kBadArgs;
  const int64_t *xs = shapes[0], *ys = shapes[yi], *ps = shapes[pi];
  const int64_t n = xs[0], c = xs[1];
  StageEval stage;
  if (ys[0] != n || ys[1] != c || ps[0] != n || ps[1] != c || ps[2] != 1 || ps[3] != 1 ||
      !stage.init(params, ndims, shapes, c, xs[2], xs[3], ys[2], ys[3], s, sym, kPre, kSE))
    return kBadShape;
  stage.batch(static_cast<const float *>(params[0]), n, static_cast<float *>(params[yi]),
              static_cast<float *>(params[pi]));
  return kOk;
}

// ---------------------------------------------------------------------------------------------------------------
// A whole MBConv block in inference (with SE), one image per work item:
//     out = bn_p(conv1x1(se(stage(conv1x1(x, w_e))), w_p))  [+ x]
// The expansion conv runs kVec channels at a time into a per-thread buffer that the depthwise stage reads at once
// (StageEval::channels), the SE gates the image's stage output in place, and the projection conv reads it from the
// cache with its BatchNorm and the residual in its epilogue (gemm.h).  Separately, the expanded activations and the
// stage output each go to memory and back between oneDNN's convs and the stage, and the projection's BN and the
// residual are two more passes.  Inputs: x (N, Ci, H, W), [w_e (Ce, Ci, 1, 1)], w_dw, the depthwise BN (gamma, beta,
// stats, eps), [the expansion BN], the SE (w1, b1, w2, b2), w_p (Co, Ce, 1, 1), the projection BN; output
// (N, Co, Ho, Wo).  Without the bracketed expansion, the stage reads x directly.  kResidual adds x (stride 1, Co = Ci).

thread_local std::vector<float> t_expanded, t_stage_out, t_pooled, t_panel, t_gemm_tile;

// The projection of a block kernel: its 1x1 conv's weights packed for gemm.h and its BatchNorm as the GEMM's epilogue.
struct BlockProjection {
  std::vector<float> packed, scale, shift;
  int64_t co = 0;

  // w_p at params[wp] (Co, Ce, 1, 1), its BN (gamma, beta, stats, eps) from wp + 1.
  bool init(void **params, int *ndims, int64_t **shapes, int wp, int64_t ce) {
    const int64_t *ps = shapes[wp];
    co = ps[0];
    effnet::BnParams bn;
    if (ndims[wp] != 4 || ps[1] != ce || ps[2] != 1 || ps[3] != 1 ||
        !effnet::parse_bn_params(params, ndims, shapes, wp + 1, co, &bn))
      return false;
    packed = effnet::gemm::pack_a(static_cast<const float *>(params[wp]), co, ce);
    bn_constants(bn, co, &scale, &shift);
    return true;
  }
};

// One image of a block kernel on the calling thread: the stage over blocks of `step` channels (at most kVec) whose nc
// input planes input(c0, nc) returns, the SE gate on the image's stage output in place, then the projection conv from
// the cache with its BatchNorm (and the residual, when set) in the GEMM's epilogue, into out.  `panel` is gemm.h
// scratch of at least Ce * kNR floats (and of the input's conv, if input runs one), `tile` of kMR * kNR.
template <typename Input>
void block_image(const StageEval &stage, const BlockProjection &proj, Input &&input, const float *residual, float *out,
                 float *panel, float *tile, int64_t step = kVec) {
  const int64_t ce = stage.c;
  float *y = scratch(t_stage_out, ce * stage.out_sz);
  float *pooled = scratch(t_pooled, ce);
  for (int64_t c0 = 0; c0 < ce; c0 += step) {
    const int64_t nc = std::min<int64_t>(step, ce - c0);
    stage.channels(input(c0, nc), c0, nc, y, pooled, stage.block_taps(c0, nc));
  }
  float *gate = scratch(t_gate, ce);
  se_gates(stage.se, stage.w2t.data(), pooled, ce, gate);
  stage.excite(0, ce, y, gate);
  effnet::gemm::Epilogue ep;
  ep.scale = proj.scale.data();
  ep.shift = proj.shift.data();
  ep.residual = residual;
  effnet::gemm::rows(proj.packed.data(), ce, y, stage.out_sz, 0, proj.co, out, ep, panel, tile);
}

template <bool kResidual>
int mbconv_eval(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s, bool sym) {
  if (nparam != 21 && nparam != 16) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const bool expanded = nparam == 21;
  const int first = expanded ? 1 : 0;  // the stage's parameters as dw_bn_silu_eval's, from params[first + 1]
  const int wp = nparam - 6, oi = nparam - 1;
  if (ndims[0] != 4 || ndims[oi] != 4) return kBadArgs;
  const int64_t *xs = shapes[0], *os = shapes[oi];
  const int64_t n = xs[0], ci = xs[1], ce = expanded ? shapes[1][0] : ci;
  StageEval stage;
  BlockProjection proj;
  if ((expanded && (ndims[1] != 4 || shapes[1][1] != ci || shapes[1][2] != 1 || shapes[1][3] != 1)) ||
      !stage.init(params + first, ndims + first, shapes + first, ce, xs[2], xs[3], os[2], os[3], s, sym, expanded,
                  true) ||
      !proj.init(params, ndims, shapes, wp, ce) || os[0] != n || os[1] != proj.co ||
      (kResidual && (proj.co != ci || os[2] != xs[2] || os[3] != xs[3])))
    return kBadShape;
  const float *x = static_cast<const float *>(params[0]);
  float *out = static_cast<float *>(params[oi]);
  const int64_t in_sz = stage.in_sz, out_sz = stage.out_sz;
  // The expansion weights packed per block of kVec output channels (the stage's channel blocks).
  std::vector<std::vector<float>> expand_blocks;
  if (expanded) {
    const float *we = static_cast<const float *>(params[1]);
    for (int64_t c0 = 0; c0 < ce; c0 += kVec)
      expand_blocks.push_back(effnet::gemm::pack_a(we + c0 * ci, std::min<int64_t>(kVec, ce - c0), ci));
  }
  const int threads = threads_for(n * (ci * in_sz + ce * (in_sz + out_sz)));
  effnet::parallel_for(n, 1, threads, [&](int64_t begin, int64_t end) {
    float *panel = scratch(t_panel, std::max(ci, ce) * effnet::gemm::kNR);
    float *tile = scratch(t_gemm_tile, effnet::gemm::kMR * effnet::gemm::kNR);
    for (int64_t b = begin; b < end; ++b) {
      const float *xb = x + b * ci * in_sz;
      const auto input = [&](int64_t c0, int64_t nc) -> const float * {
        if (!expanded) return xb + c0 * in_sz;
        float *e = scratch(t_expanded, nc * in_sz);
        effnet::gemm::rows(expand_blocks[c0 / kVec].data(), ci, xb, in_sz, 0, nc, e, effnet::gemm::Epilogue{},
                           panel, tile);
        return e;
      };
      block_image(stage, proj, input, kResidual ? xb : nullptr, out + b * proj.co * out_sz, panel, tile);
    }
  });
  return kOk;
}

// ---------------------------------------------------------------------------------------------------------------
// Dense (groups = 1, meant for the 3-channel stem): x (N, Ci, H, W), w (Co, Ci, K, K), y (N, Co, Ho, Wo).

thread_local std::vector<float> t_packed;

// Phase-split padded copies of all N * Ci input planes, shared by the output-channel tasks, in a buffer of the calling
// thread that lives until its next call.  Reused rather than allocated per call: a fresh 19 MB (the stem's input at
// 224 px, batch 32) comes from mmap as new pages, zeroed by the kernel and faulted in one by one (~5 ms a call).
const float *pack_all(const float *x, int64_t planes, const Plane &g) {
  float *packed = scratch(t_packed, planes * g.size());
  const int64_t in_sz = g.h * g.w;
  effnet::parallel_for(planes, kChunk, threads_for(2 * planes * in_sz), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) pack(x + i * in_sz, g, packed + i * g.size());
  });
  return packed;
}

// Output channels per block of the eval stem kernel: each input vector (one tap of one input channel over kVec
// output columns) is loaded once for the block's channels.  The accumulators must stay in registers: 8 zmm with
// AVX-512, 4 x 2 ymm otherwise.
#if defined(__AVX512F__)
constexpr int kDenseBlock = 8;
#else
constexpr int kDenseBlock = 4;
#endif

// One output row of a block of kDenseBlock output channels: y[j][oh][ow] = sum over c, kh, kw of
// w[j][c][kh][kw] * x_padded[c][oh * S + kh][ow * S + kw], from the phase-split planes of one image (`packed`, ci
// planes of g.size() floats) and weights padded to whole blocks (`w`: kDenseBlock x ci x K x K).  Rows of outputs
// past the block's channel count (`rows`) are not written.
template <int K, int S>
void dense_block_row(const float *packed, int64_t ci, const float *w, const Plane &g, int64_t oh, int64_t rows,
                     int64_t out_sz, float *y) {
  const int64_t plane = g.size(), phase = g.hp * g.wq, taps = ci * K * K;
  for (int64_t ow0 = 0; ow0 < g.wo; ow0 += kVec) {
    VecF acc[kDenseBlock] = {};
    for (int64_t c = 0; c < ci; ++c) {
      const float *xc = packed + c * plane + oh * S * g.wq + ow0;
#pragma GCC unroll 7
      for (int kh = 0; kh < K; ++kh) {
#pragma GCC unroll 7
        for (int kw = 0; kw < K; ++kw) {
          const VecF xv = load_vec(xc + (kw % S) * phase + kh * g.wq + kw / S);
          const float *wt = w + (c * K + kh) * K + kw;
#pragma GCC unroll 8
          for (int j = 0; j < kDenseBlock; ++j) acc[j] += xv * wt[j * taps];
        }
      }
    }
    for (int64_t j = 0; j < rows; ++j) store_chunk(y + j * out_sz + oh * g.wo + ow0, acc[j], g.wo - ow0);
  }
}

template <int K, int S>
void dense_block_rows(const float *packed, int64_t ci, const float *w, const Plane &g, int64_t oh0, int64_t oh1,
                      int64_t rows, int64_t out_sz, float *y) {
  for (int64_t oh = oh0; oh < oh1; ++oh) dense_block_row<K, S>(packed, ci, w, g, oh, rows, out_sz, y);
}

// Dense weights (Co, taps) zero-padded to whole blocks of kDenseBlock output channels, as the row kernels read them.
std::vector<float> padded_to_blocks(const float *w, int64_t co, int64_t taps) {
  std::vector<float> padded((co + kDenseBlock - 1) / kDenseBlock * kDenseBlock * taps, 0.0f);
  std::memcpy(padded.data(), w, sizeof(float) * co * taps);
  return padded;
}

typedef void (*DenseRowsFn)(const float *, int64_t, const float *, const Plane &, int64_t, int64_t, int64_t, int64_t,
                            float *);

// The channel-blocked rows for k in {3, 5, 7} x stride {1, 2}; null otherwise.
DenseRowsFn select_dense_rows(const Plane &g) {
  switch (g.k * 10 + g.s) {
    case 31: return dense_block_rows<3, 1>;
    case 32: return dense_block_rows<3, 2>;
    case 51: return dense_block_rows<5, 1>;
    case 52: return dense_block_rows<5, 2>;
    case 71: return dense_block_rows<7, 1>;
    case 72: return dense_block_rows<7, 2>;
    default: return nullptr;
  }
}

// The stem in inference: y = silu(bn(conv(x, w))) for a dense conv, BN on given (moving) statistics; inputs x, w,
// gamma, beta, stats (2, Co), eps (1).  Output channels in blocks (each input vector loaded once per block), bands of
// rows per work item, the BN + SiLU applied to each band while it is in cache.  Inference only: the training stem keeps
// the per-channel forward, whose summation order the from-scratch runs were tuned with (a different order moved the
// demo's 3-epoch accuracy by several points, docs/performance.md).
int dense_bn_silu_eval(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s,
                       bool sym) {
  if (nparam != 7 || ndims[0] != 4 || ndims[1] != 4 || ndims[6] != 4) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *xs = shapes[0], *ws = shapes[1], *ys = shapes[6];
  const int64_t n = xs[0], ci = xs[1], co = ws[0], k = ws[2];
  Plane g;
  effnet::BnParams bn;
  if (ws[1] != ci || ws[3] != k || ys[0] != n || ys[1] != co || !make_plane(xs[2], xs[3], ys[2], ys[3], k, s, sym, &g) ||
      !effnet::parse_bn_params(params, ndims, shapes, 2, co, &bn))
    return kBadShape;
  const DenseRowsFn rows_fn = select_dense_rows(g);
  if (rows_fn == nullptr) return kBadShape;
  const float *x = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[6]);
  std::vector<float> scale, shift;
  bn_constants(bn, co, &scale, &shift);
  const float *packed = pack_all(x, n * ci, g);
  const int64_t out_sz = g.ho * g.wo, blocks = (co + kDenseBlock - 1) / kDenseBlock, taps = ci * k * k;
  // Work items are (image, channel block, row band).
  const std::vector<float> wp = padded_to_blocks(w, co, taps);
  const int64_t band = 8, bands = (g.ho + band - 1) / band;
  effnet::parallel_for(n * blocks * bands, 1, threads_for(n * co * out_sz * ci), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / (blocks * bands), blk = i / bands % blocks, oh0 = i % bands * band;
      const int64_t oh1 = oh0 + band < g.ho ? oh0 + band : g.ho;
      const int64_t c0 = blk * kDenseBlock, rows = co - c0 < kDenseBlock ? co - c0 : kDenseBlock;
      float *yb = y + (b * co + c0) * out_sz;
      rows_fn(packed + b * ci * g.size(), ci, wp.data() + c0 * taps, g, oh0, oh1, rows, out_sz, yb);
      for (int64_t j = 0; j < rows; ++j) {
        float *dst = yb + j * out_sz + oh0 * g.wo;
        effnet::silu_span(dst, (oh1 - oh0) * g.wo, scale[c0 + j], shift[c0 + j], dst);
      }
    }
  });
  return kOk;
}

// The stem and the first MBConv block in inference, one image per work item: the stem (dense conv + BN + SiLU, as
// dense_bn_silu_eval computes it) kDenseBlock output channels at a time into a per-thread buffer that the block's
// depthwise stage reads at once, then the block as mbconv_eval without expansion (block_image).  Separately the stem's
// output (32 x 112 x 112 floats per image for B0 at 224 px, 51 MB per batch of 32) goes to memory and is read back.
// Inputs: x (N, Ci, H, W), w_s (Ce, Ci, K, K), the stem BN (gamma, beta, stats, eps), then the block's w_dw, depthwise
// BN, SE (w1, b1, w2, b2), w_p and projection BN; output (N, Co, Ho, Wo).  The stride and padding of the name are the stem's;
// the block's depthwise conv has stride 1 and TF "SAME" padding (all EfficientNets' first block; "SAME" equals k / 2
// there).
thread_local std::vector<float> t_image;

int stem_mbconv_eval(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s,
                     bool sym) {
  if (nparam != 21 || ndims[0] != 4 || ndims[1] != 4 || ndims[20] != 4) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *xs = shapes[0], *ws = shapes[1], *os = shapes[20];
  const int64_t n = xs[0], ci = xs[1], ce = ws[0], k = ws[2];
  Plane g;
  effnet::BnParams stem_bn;
  StageEval stage;
  BlockProjection proj;
  if (ws[1] != ci || ws[3] != k || !make_plane(xs[2], xs[3], os[2], os[3], k, s, sym, &g) ||
      !effnet::parse_bn_params(params, ndims, shapes, 2, ce, &stem_bn) ||
      !stage.init(params + 5, ndims + 5, shapes + 5, ce, g.ho, g.wo, g.ho, g.wo, 1, false, false, true) ||
      !proj.init(params, ndims, shapes, 15, ce) || os[0] != n || os[1] != proj.co)
    return kBadShape;
  const DenseRowsFn rows_fn = select_dense_rows(g);
  if (rows_fn == nullptr) return kBadShape;
  std::vector<float> scale, shift;
  bn_constants(stem_bn, ce, &scale, &shift);
  const int64_t in_sz = g.h * g.w, out_sz = g.ho * g.wo, taps = ci * k * k;
  const std::vector<float> wp = padded_to_blocks(static_cast<const float *>(params[1]), ce, taps);
  const float *x = static_cast<const float *>(params[0]);
  float *out = static_cast<float *>(params[20]);
  const int threads = threads_for(n * ce * out_sz * (ci + 2));
  effnet::parallel_for(n, 1, threads, [&](int64_t begin, int64_t end) {
    float *panel = scratch(t_panel, ce * effnet::gemm::kNR);
    float *tile = scratch(t_gemm_tile, effnet::gemm::kMR * effnet::gemm::kNR);
    float *packed = scratch(t_image, ci * g.size());
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t c = 0; c < ci; ++c) pack(x + (b * ci + c) * in_sz, g, packed + c * g.size());
      const auto stem = [&](int64_t c0, int64_t nc) -> const float * {
        float *e = scratch(t_expanded, nc * out_sz);
        for (int64_t j = 0; j < nc; j += kDenseBlock)
          rows_fn(packed, ci, wp.data() + (c0 + j) * taps, g, 0, g.ho, std::min<int64_t>(kDenseBlock, nc - j), out_sz,
                  e + j * out_sz);
        for (int64_t l = 0; l < nc; ++l)
          effnet::silu_span(e + l * out_sz, out_sz, scale[c0 + l], shift[c0 + l], e + l * out_sz);
        return e;
      };
      block_image(stage, proj, stem, nullptr, out + b * proj.co * out_sz, panel, tile, kDenseBlock);
    }
  });
  return kOk;
}

int dense_fwd(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s, bool sym) {
  if (nparam != 3 || !is_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *xs = shapes[0], *ws = shapes[1], *ys = shapes[2];
  const int64_t n = xs[0], ci = xs[1], co = ws[0], k = ws[2];
  Plane g;
  if (ws[1] != ci || ws[3] != k || ys[0] != n || ys[1] != co || !make_plane(xs[2], xs[3], ys[2], ys[3], k, s, sym, &g))
    return kBadShape;
  const PlaneKernels kern = select_kernels(g);
  const float *x = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  const float *packed = pack_all(x, n * ci, g);
  const int64_t out_sz = g.ho * g.wo;
  effnet::parallel_for(n * co, kChunk, threads_for(n * co * out_sz * ci), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / co, oc = i % co;
      float *yp = y + i * out_sz;
      std::memset(yp, 0, sizeof(float) * out_sz);
      for (int64_t c = 0; c < ci; ++c)
        kern.fwd(packed + (b * ci + c) * g.size(), w + (oc * ci + c) * k * k, g, yp);
    }
  });
  return kOk;
}

// Inputs dy, w, x (shape only); output dx.
int dense_bwd_x(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s, bool sym) {
  if (nparam != 4 || !is_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *ys = shapes[0], *ws = shapes[1], *xs = shapes[3];
  const int64_t n = xs[0], ci = xs[1], co = ws[0], k = ws[2];
  Plane g;
  if (ws[1] != ci || ws[3] != k || ys[0] != n || ys[1] != co || !make_plane(xs[2], xs[3], ys[2], ys[3], k, s, sym, &g))
    return kBadShape;
  const PlaneKernels kern = select_kernels(g);
  const float *dy = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[3]);
  const int64_t in_sz = g.h * g.w, out_sz = g.ho * g.wo;
  effnet::parallel_for(n * ci, kChunk, threads_for(n * ci * co * out_sz), [&](int64_t begin, int64_t end) {
    float *dbuf = scratch(t_buf, g.size());
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / ci, c = i % ci;
      std::memset(dbuf, 0, sizeof(float) * g.size());
      for (int64_t oc = 0; oc < co; ++oc)
        kern.bwd_x(dy + (b * co + oc) * out_sz, w + (oc * ci + c) * k * k, g, dbuf);
      unpack(dbuf, g, dx + i * in_sz);
    }
  });
  return kOk;
}

// Inputs dy, x, w (shape only); output dw.  One output channel per task, batch summed in order: deterministic.
int dense_bwd_w(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s, bool sym) {
  if (nparam != 4 || !is_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *ys = shapes[0], *xs = shapes[1], *ws = shapes[3];
  const int64_t n = xs[0], ci = xs[1], co = ws[0], k = ws[2];
  Plane g;
  if (ws[1] != ci || ws[3] != k || ys[0] != n || ys[1] != co || !make_plane(xs[2], xs[3], ys[2], ys[3], k, s, sym, &g))
    return kBadShape;
  const PlaneKernels kern = select_kernels(g);
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  float *dw = static_cast<float *>(params[3]);
  const float *packed = pack_all(x, n * ci, g);
  const int64_t out_sz = g.ho * g.wo, taps = k * k;
  effnet::parallel_for(co, 1, threads_for(n * co * out_sz * ci), [&](int64_t begin, int64_t end) {
    double *acc = scratch(t_acc, ci * taps * kVec);
    VecF *facc = scratch(t_facc, ci * taps);
    for (int64_t oc = begin; oc < end; ++oc) {
      std::fill(acc, acc + ci * taps * kVec, 0.0);
      std::fill(facc, facc + ci * taps, VecF{});
      int64_t pending = 0;
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t c = 0; c < ci; ++c)
          kern.bwd_w(dy + (b * co + oc) * out_sz, packed + (b * ci + c) * g.size(), g, facc + c * taps);
        pending += out_sz;
        if (pending >= kWidenEvery || b == n - 1) {
          widen_taps(facc, ci * taps, acc);
          pending = 0;
        }
      }
      reduce_taps(acc, ci * taps, dw + oc * ci * taps);
    }
  });
  return kOk;
}

// ---------------------------------------------------------------------------------------------------------------
// 1x1 conv on small maps in inference: y = conv1x1(x, w), or act(bn(conv1x1(x, w))) with the BatchNorm on given
// (moving) statistics in the GEMM's epilogue.  Inputs x (N, Ci, H, W), w (Co, Ci, 1, 1) [, gamma, beta, stats (2, Co),
// eps (1)]; output y (N, Co, H, W).  oneDNN's NCHW 1x1 conv, which works per image, ran at ~150 GFLOP/s on B0's 7x7
// maps (~190 on 14x14); the columns of all images as one matrix (gemm.h `columns`) at ~200 (2-core AVX-512 AMD EPYC,
// docs/performance.md), and the BN pass after the conv goes away.
template <bool kSiLU>
int pointwise_eval(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if ((nparam != 3 && nparam != 7) || ndims[0] != 4 || ndims[1] != 4 || ndims[nparam - 1] != 4) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const bool with_bn = nparam == 7;
  const int64_t *xs = shapes[0], *ws = shapes[1], *ys = shapes[nparam - 1];
  const int64_t n = xs[0], ci = xs[1], p = xs[2] * xs[3], co = ws[0];
  effnet::BnParams bn;
  if (ws[1] != ci || ws[2] != 1 || ws[3] != 1 || ys[0] != n || ys[1] != co || ys[2] != xs[2] || ys[3] != xs[3] ||
      (with_bn && !effnet::parse_bn_params(params, ndims, shapes, 2, co, &bn)) || (kSiLU && !with_bn))
    return kBadShape;
  const std::vector<float> a = effnet::gemm::pack_a(static_cast<const float *>(params[1]), co, ci);
  std::vector<float> scale, shift;
  effnet::gemm::Epilogue epilogue;
  if (with_bn) {
    bn_constants(bn, co, &scale, &shift);
    epilogue.scale = scale.data();
    epilogue.shift = shift.data();
  }
  epilogue.silu = kSiLU;
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[nparam - 1]);
  const int64_t panels = (n * p + effnet::gemm::kNR - 1) / effnet::gemm::kNR;
  effnet::parallel_for(panels, 1, threads_for(n * p * (ci + co)), [&](int64_t begin, int64_t end) {
    float *panel = scratch(t_panel, ci * effnet::gemm::kNR);
    effnet::gemm::columns(a.data(), co, ci, x, n, p, y, epilogue, begin, end, panel);
  });
  return kOk;
}

// ---------------------------------------------------------------------------------------------------------------
// 1x1 conv weight gradient: dw[o][i] = sum over n, h, w of dy[n][o][h, w] * x[n][i][h, w], i.e. the product
// dy (Co x K) . x^T (K x Ci) over K = N * H * W, with both operands read along their contiguous H * W rows.  oneDNN's
// NCHW backward-weights kernel reached ~26 GFLOP/s here.  K is cut into blocks of ~kBlockK values (whole samples
// when H * W is small, parts of one sample when it is large) so that a block of dy and x stays in L2 while every
// 4 x 4 output tile is computed from it in 16 vector accumulators (8 loads per 16 FMAs); each block's tile sums are
// added in double to the tile's total.  Every tile is owned by one work item and the blocks are summed in order:
// deterministic.  Inputs dy, x, w (shape only); output dw (Co, Ci, 1, 1).

constexpr int kTile = 4;
constexpr int64_t kBlockK = 2048;

// A contiguous part [p0, p1) of sample b's H * W positions.
struct Segment {
  int64_t b, p0, p1;
};

int pw_bwd_w(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 4 || !is_4d(nparam, ndims)) return kBadArgs;
  if (!all_float32(nparam, dtypes)) return kBadDtype;
  const int64_t *ys = shapes[0], *xs = shapes[1], *ws = shapes[3];
  const int64_t n = xs[0], ci = xs[1], co = ys[1], hw = xs[2] * xs[3];
  if (ys[0] != n || ys[2] != xs[2] || ys[3] != xs[3] || ws[0] != co || ws[1] != ci || ws[2] != 1 || ws[3] != 1)
    return kBadShape;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  float *dw = static_cast<float *>(params[3]);
  // Blocks of segments covering K in order.
  std::vector<std::vector<Segment>> blocks;
  if (hw >= kBlockK) {
    for (int64_t b = 0; b < n; ++b)
      for (int64_t p = 0; p < hw; p += kBlockK) blocks.push_back({{b, p, p + kBlockK < hw ? p + kBlockK : hw}});
  } else {
    const int64_t per_block = kBlockK / (hw > 0 ? hw : 1);
    for (int64_t b = 0; b < n; b += per_block) {
      blocks.emplace_back();
      for (int64_t s = b; s < n && s < b + per_block; ++s) blocks.back().push_back({s, 0, hw});
    }
  }
  const int64_t tiles_o = (co + kTile - 1) / kTile, tiles_i = (ci + kTile - 1) / kTile, tiles = tiles_o * tiles_i;
  std::vector<double> total(tiles * kTile * kTile, 0.0);
  const int threads = threads_for(n * hw * (co + ci));
  for (const std::vector<Segment> &block : blocks) {
    effnet::parallel_for(tiles, 4, threads, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t o0 = t / tiles_i * kTile, i0 = t % tiles_i * kTile;
        const int64_t no = co - o0 < kTile ? co - o0 : kTile, ni = ci - i0 < kTile ? ci - i0 : kTile;
        VecF acc[kTile][kTile] = {};
        double tail[kTile][kTile] = {};
        for (const Segment &seg : block) {
          // Rows of the tile; missing rows (at the edges) repeat the last one and are not stored.
          const float *a[kTile], *c[kTile];
          for (int r = 0; r < kTile; ++r) {
            a[r] = dy + (seg.b * co + o0 + (r < no ? r : no - 1)) * hw;
            c[r] = x + (seg.b * ci + i0 + (r < ni ? r : ni - 1)) * hw;
          }
          const int64_t full = seg.p0 + (seg.p1 - seg.p0) / kVec * kVec;
          for (int64_t k = seg.p0; k < full; k += kVec) {
            const VecF a0 = load_vec(a[0] + k), a1 = load_vec(a[1] + k), a2 = load_vec(a[2] + k),
                       a3 = load_vec(a[3] + k);
            const VecF c0 = load_vec(c[0] + k), c1 = load_vec(c[1] + k), c2 = load_vec(c[2] + k),
                       c3 = load_vec(c[3] + k);
            acc[0][0] += a0 * c0; acc[0][1] += a0 * c1; acc[0][2] += a0 * c2; acc[0][3] += a0 * c3;
            acc[1][0] += a1 * c0; acc[1][1] += a1 * c1; acc[1][2] += a1 * c2; acc[1][3] += a1 * c3;
            acc[2][0] += a2 * c0; acc[2][1] += a2 * c1; acc[2][2] += a2 * c2; acc[2][3] += a2 * c3;
            acc[3][0] += a3 * c0; acc[3][1] += a3 * c1; acc[3][2] += a3 * c2; acc[3][3] += a3 * c3;
          }
          for (int64_t k = full; k < seg.p1; ++k)
            for (int r = 0; r < kTile; ++r)
              for (int q = 0; q < kTile; ++q) tail[r][q] += static_cast<double>(a[r][k]) * c[q][k];
        }
        double *out = total.data() + t * kTile * kTile;
        for (int r = 0; r < kTile; ++r) {
          for (int q = 0; q < kTile; ++q) {
            double sum = tail[r][q];
            for (int l = 0; l < kVec; ++l) sum += acc[r][q][l];
            out[r * kTile + q] += sum;
          }
        }
      }
    });
  }
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t o0 = t / tiles_i * kTile, i0 = t % tiles_i * kTile;
    for (int64_t r = 0; r < kTile && o0 + r < co; ++r)
      for (int64_t q = 0; q < kTile && i0 + q < ci; ++q)
        dw[(o0 + r) * ci + i0 + q] = static_cast<float>(total[t * kTile * kTile + r * kTile + q]);
  }
  return kOk;
}

}  // namespace

// Stride and padding are part of the name: `_sym` kernels pad k / 2 on every side (PyTorch), the others TF "SAME".
#define EFFNET_CONV_KERNEL(name, impl, stride, sym) \
  EFFNET_KERNEL(name, impl(nparam, params, ndims, shapes, dtypes, stride, sym))
#define EFFNET_CONV_KERNELS(prefix, impl)                     \
  EFFNET_CONV_KERNEL(prefix##_s1, impl, 1, false)             \
  EFFNET_CONV_KERNEL(prefix##_s2, impl, 2, false)             \
  EFFNET_CONV_KERNEL(prefix##_s1_sym, impl, 1, true)          \
  EFFNET_CONV_KERNEL(prefix##_s2_sym, impl, 2, true)

EFFNET_CONV_KERNELS(effnet_dw_fwd, dw_fwd)
EFFNET_CONV_KERNELS(effnet_dw_bwd_x, dw_bwd_x)
EFFNET_CONV_KERNELS(effnet_dw_bwd_w, dw_bwd_w)
// The depthwise stage in inference (see dw_bn_silu_eval): without and with the expansion conv's BN + SiLU.
EFFNET_CONV_KERNELS(effnet_dw_bn_silu_eval, (dw_bn_silu_eval<false, false>))
EFFNET_CONV_KERNELS(effnet_dw_pre_bn_silu_eval, (dw_bn_silu_eval<true, false>))
// ... and the same with the SE excitation applied (gated y).
EFFNET_CONV_KERNELS(effnet_dw_bn_silu_se_eval, (dw_bn_silu_eval<false, true>))
EFFNET_CONV_KERNELS(effnet_dw_pre_bn_silu_se_eval, (dw_bn_silu_eval<true, true>))
// A whole MBConv block in inference (see mbconv_eval): without and with the residual.
EFFNET_CONV_KERNELS(effnet_mbconv_eval, mbconv_eval<false>)
EFFNET_CONV_KERNELS(effnet_mbconv_eval_res, mbconv_eval<true>)
EFFNET_CONV_KERNELS(effnet_dense_fwd, dense_fwd)
// The stem in inference (dense conv + BN + SiLU, see dense_bn_silu_eval), and with the first block (stem_mbconv_eval).
EFFNET_CONV_KERNELS(effnet_dense_bn_silu_eval, dense_bn_silu_eval)
EFFNET_CONV_KERNELS(effnet_stem_mbconv_eval, stem_mbconv_eval)
EFFNET_CONV_KERNELS(effnet_dense_bwd_x, dense_bwd_x)
EFFNET_CONV_KERNELS(effnet_dense_bwd_w, dense_bwd_w)

// 1x1 conv on small maps in inference (see pointwise_eval): plain or with BN, and with BN + SiLU.
EFFNET_KERNEL(effnet_pw_eval, pointwise_eval<false>(nparam, params, ndims, shapes, dtypes))
EFFNET_KERNEL(effnet_pw_bn_silu_eval, pointwise_eval<true>(nparam, params, ndims, shapes, dtypes))
// 1x1 conv weight gradient (see pw_bwd_w).
EFFNET_KERNEL(effnet_pw_bwd_w, pw_bwd_w(nparam, params, ndims, shapes, dtypes))
