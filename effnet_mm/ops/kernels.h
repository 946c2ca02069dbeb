// Shared by every source of effnet_mm's CPU kernel library (MindSpore `ops.Custom(func_type="aot")`): the return
// codes, argument checks, the thread policy, the export macro and the optional per-kernel timer.  It is part of the
// library's build hash (effnet_mm/ops/build.py), so changing it rebuilds the library.
//
// Every exported kernel has MindSpore's AOT CPU signature
//     int f(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream, void *extra)
// with the inputs first and the outputs last; it returns kOk (0) on success and one of the Status codes otherwise,
// which makes MindSpore raise.  Backward kernels that need an output shape take one extra input only for its shape.
#pragma once

#include <math.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

// glibc only declares its vector expf variants (libmvec) under -ffast-math, which would also let GCC reassociate the
// reductions of the kernels; declaring the SIMD variant here vectorises expf alone (libmvec: <= 4 ulp) in every
// `omp simd` loop that calls it.
#if defined(__x86_64__) && defined(__GLIBC__)
extern "C" float expf(float) __attribute__((__simd__("notinbranch")));
#endif

namespace effnet {

enum Status : int {
  kOk = 0,
  kBadArgs = 1,   // wrong number of inputs/outputs or wrong ranks
  kBadDtype = 2,  // a dtype the kernel does not take (float32; image inputs also uint8)
  kBadShape = 3,  // shapes that do not fit together
};

inline bool all_float32(int nparam, const char **dtypes) {
  for (int i = 0; i < nparam; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

inline int64_t numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

// SiLU over a span: dst[i] = z / (1 + exp(-z)) with z = src[i] * scale + shift (per span, or per element with the
// array form); dst may be src.  With AVX-512 the exponential is computed here: Cody-Waite reduction by ln 2, a
// degree-6 polynomial in Horner form (coefficients fitted for relative error on [-ln 2 / 2, ln 2 / 2] by Lawson's
// reweighted least squares) and vscalefps, which also gives the overflow to inf and underflow to 0; <= 1.05 ulp
// against double exp over the float range, measured.  The negation of z is folded into the reduction.  A SiLU value
// costs 0.24 ns per core on an AVX-512 AMD EPYC (the earlier Cephes form, 1.02 ulp: 0.28 ns; glibc's libmvec expf,
// <= 4 ulp: 0.41 ns): the pass is bound by its ~14 vector operations, so each one saved counts.  Other targets use
// libmvec through the `omp simd` loop.
#if defined(__AVX512F__)
inline __m512 exp_neg_avx512(__m512 z) {  // exp(-z)
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(z, _mm512_set1_ps(-1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmsub_ps(n, _mm512_set1_ps(0.693359375f), z);  // -z - n ln2 in two parts
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.38437e-3f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.37416e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1668e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666432e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.9999994e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

inline __m512 silu_avx512(__m512 z) {
  return _mm512_div_ps(z, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_neg_avx512(z)));
}

template <typename Affine>
inline void silu_span_avx512(const float *src, int64_t n, Affine affine, float *dst) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, silu_avx512(affine(_mm512_loadu_ps(src + i), i, 0xffff)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(dst + i, m, silu_avx512(affine(_mm512_maskz_loadu_ps(m, src + i), i, m)));
  }
}
#endif

inline void silu_span(const float *src, int64_t n, float scale, float shift, float *dst) {
#if defined(__AVX512F__)
  const __m512 a = _mm512_set1_ps(scale), b = _mm512_set1_ps(shift);
  silu_span_avx512(src, n, [&](__m512 x, int64_t, __mmask16) { return _mm512_fmadd_ps(x, a, b); }, dst);
#else
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float z = src[i] * scale + shift;
    dst[i] = z / (1.0f + expf(-z));
  }
#endif
}

inline void silu_span(const float *src, int64_t n, const float *scale, const float *shift, float *dst) {
#if defined(__AVX512F__)
  silu_span_avx512(src, n, [&](__m512 x, int64_t i, __mmask16 m) {
    return _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, scale + i), _mm512_maskz_loadu_ps(m, shift + i));
  }, dst);
#else
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float z = src[i] * scale[i] + shift[i];
    dst[i] = z / (1.0f + expf(-z));
  }
#endif
}

// Float32 sigmoid to ~2 ulp: always exp of a non-positive argument (no overflow), and for x < 0 the form e / (1 + e)
// keeps the *relative* error small in the far negative tail, where 1 / (1 + exp(-x)) would round through a huge
// exp.  Called once per (N, C) plane (the SE gates) outside any `omp simd` loop, so it uses glibc's scalar expf (< 1 ulp), not the
// vector exp of the SiLU loops.
inline float sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}

// Per-channel constants of BatchNorm on given statistics, y = act(x * scale + shift): scale = gamma * rstd,
// shift = beta - mean * scale (computed in double).  `stats` is (2, C): [mean, variance].  Every kernel that applies
// a BatchNorm uses these, so a fused kernel computes exactly what the BN kernel would.
struct BnChannel {
  float mean, rstd, scale, shift;
};

inline BnChannel bn_channel(const float *gamma, const float *beta, const float *stats, float eps, int64_t c,
                            int64_t ch) {
  const double rstd = 1.0 / sqrt(static_cast<double>(stats[c + ch]) + static_cast<double>(eps));
  const double scale = static_cast<double>(gamma[ch]) * rstd;
  return {stats[ch], static_cast<float>(rstd), static_cast<float>(scale),
          static_cast<float>(static_cast<double>(beta[ch]) - static_cast<double>(stats[ch]) * scale)};
}

// BatchNorm parameters among a kernel's inputs, from index `first`: gamma (C), beta (C), stats (2, C), eps (1).
struct BnParams {
  const float *gamma, *beta, *stats;
  float eps;
  BnChannel channel(int64_t c, int64_t ch) const { return bn_channel(gamma, beta, stats, eps, c, ch); }
};

inline bool parse_bn_params(void **params, const int *ndims, int64_t **shapes, int first, int64_t c, BnParams *p) {
  const auto vec = [&](int i, int64_t len) { return ndims[i] == 1 && shapes[i][0] == len; };
  if (!vec(first, c) || !vec(first + 1, c) || !vec(first + 3, 1) || ndims[first + 2] != 2 ||
      shapes[first + 2][0] != 2 || shapes[first + 2][1] != c)
    return false;
  p->gamma = static_cast<const float *>(params[first]);
  p->beta = static_cast<const float *>(params[first + 1]);
  p->stats = static_cast<const float *>(params[first + 2]);
  p->eps = *static_cast<const float *>(params[first + 3]);
  return true;
}

// Mean of `size` floats: float partial sums of 1024 values (vectorised), accumulated in double in a fixed order.
inline float plane_mean(const float *p, int64_t size) {
  double total = 0.0;
  for (int64_t b = 0; b < size; b += 1024) {
    const int64_t e = b + 1024 < size ? b + 1024 : size;
    float part = 0.0f;
#pragma omp simd reduction(+ : part)
    for (int64_t j = b; j < e; ++j) part += p[j];
    total += part;
  }
  return size > 0 ? static_cast<float>(total * (1.0 / static_cast<double>(size))) : 0.0f;
}

// Threads per kernel as set by the Python side (effnet_set_kernel_threads, from the user's environment as Python saw
// it at startup: MindSpore sets OMP_NUM_THREADS=1 in the C environment when it is imported), else
// $EFFNET_MM_NUM_THREADS, else $OMP_NUM_THREADS, else every core.  Read when the thread pool starts (first kernel).
inline std::atomic<int> &kernel_threads_setting() {
  static std::atomic<int> n{0};
  return n;
}

inline int kernel_threads() {
  static const int n = [] {
    if (kernel_threads_setting().load() > 0) return kernel_threads_setting().load();
    for (const char *name : {"EFFNET_MM_NUM_THREADS", "OMP_NUM_THREADS"}) {
      const char *value = std::getenv(name);
      if (value != nullptr && std::atoi(value) > 0) return std::atoi(value);
    }
    const unsigned cores = std::thread::hardware_concurrency();
    return cores > 0 ? static_cast<int>(cores) : 1;
  }();
  return n;
}

// Below this many floats touched, waking a second thread costs more than it saves (a few microseconds per
// parallel region against ~1 us per 16k floats of streaming work).
constexpr int64_t kMinFloatsPerThread = 16384;

// Threads for a kernel touching `floats` floats in total: kernel_threads(), fewer for small tensors.
inline int threads_for(int64_t floats) {
  const int64_t by_size = floats / kMinFloatsPerThread;
  const int n = kernel_threads();
  return by_size < 1 ? 1 : (by_size < n ? static_cast<int>(by_size) : n);
}

// ---------------------------------------------------------------------------------------------------------------
// parallel_for: the kernels' only source of threads.  Not OpenMP: an OpenMP region ends with a barrier that waits
// for every thread of the team, so when another process holds a core (a shared machine, data-loader workers) a
// helper that has not even been scheduled yet holds up the caller for a scheduler time slice, on every call (B0
// layers measured 5-30x slower with two OpenMP threads under load than with one).  Here the calling thread works
// through the items itself and helpers join when they get a core; the caller waits only for items a helper has
// already claimed.  Every item is computed by one thread in a fixed way, so results never depend on the threads.

class ThreadPool {
 public:
  static ThreadPool &instance() {
    static ThreadPool *pool = new ThreadPool(kernel_threads() - 1);  // never destroyed: helpers live until exit
    return *pool;
  }

  // Calls fn(begin, end) on consecutive ranges of at most `chunk` items covering [0, count), on up to `threads`
  // threads including the caller.
  template <typename F>
  void run(int64_t count, int64_t chunk, int threads, F &fn) {
    if (chunk < 1) chunk = 1;
    std::unique_lock<std::mutex> busy(call_mutex_, std::try_to_lock);
    if (threads <= 1 || count <= chunk || helpers_.empty() || !busy.owns_lock()) {
      for (int64_t begin = 0; begin < count; begin += chunk) fn(begin, begin + chunk < count ? begin + chunk : count);
      return;
    }
    Job job;
    job.count = count;
    job.chunk = chunk;
    job.ctx = &fn;
    job.call = [](void *ctx, int64_t begin, int64_t end) { (*static_cast<F *>(ctx))(begin, end); };
    job.seats = threads - 1;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      ++generation_;
    }
    wake_.notify_all();
    work(&job);
    std::unique_lock<std::mutex> lock(mutex_);
    job_ = nullptr;  // helpers that wake up from now on find nothing to do
    done_.wait(lock, [this] { return active_ == 0; });
  }

 private:
  struct Job {
    std::atomic<int64_t> next{0};
    int64_t count = 0, chunk = 1;
    void *ctx = nullptr;
    void (*call)(void *, int64_t, int64_t) = nullptr;
    int seats = 0;  // helpers that may still join
  };

  explicit ThreadPool(int helpers) {
    for (int i = 0; i < helpers; ++i) helpers_.emplace_back([this] { helper(); });
    for (std::thread &t : helpers_) t.detach();
  }

  static void work(Job *job) {
    for (;;) {
      const int64_t begin = job->next.fetch_add(job->chunk, std::memory_order_relaxed);
      if (begin >= job->count) return;
      job->call(job->ctx, begin, begin + job->chunk < job->count ? begin + job->chunk : job->count);
    }
  }

  void helper() {
    uint64_t seen = 0;
    for (;;) {
      Job *job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        job = job_;
        if (job == nullptr || job->seats == 0) continue;
        --job->seats;
        ++active_;
      }
      work(job);
      {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (--active_ == 0) done_.notify_one();
      }
    }
  }

  std::mutex call_mutex_;  // one parallel kernel at a time; a concurrent caller runs on its own thread
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  Job *job_ = nullptr;
  uint64_t generation_ = 0;
  int active_ = 0;
  std::vector<std::thread> helpers_;
};

// Runs fn(begin, end) over [0, count) in ranges of `chunk` items on up to `threads` threads (see ThreadPool).
template <typename F>
void parallel_for(int64_t count, int64_t chunk, int threads, F &&fn) {
  ThreadPool::instance().run(count, chunk, threads, fn);
}

// ---------------------------------------------------------------------------------------------------------------
// Per-kernel timer, on when $EFFNET_MM_KERNEL_PROFILE is set (and not "0"): calls and wall time per exported kernel,
// read with effnet_kernel_stats() (benchmarks/profile_step.py).  Off, it costs one predictable branch per call.

struct KernelStat {
  const char *name = nullptr;
  std::atomic<int64_t> calls{0};
  std::atomic<int64_t> nanoseconds{0};
};

constexpr int kMaxKernels = 256;

inline KernelStat *kernel_stat_table() {
  static KernelStat table[kMaxKernels];
  return table;
}

inline std::atomic<int> &kernel_stat_count() {
  static std::atomic<int> count{0};
  return count;
}

inline bool profiling() {
  static const bool on = [] {
    const char *value = std::getenv("EFFNET_MM_KERNEL_PROFILE");
    return value != nullptr && *value != '\0' && std::strcmp(value, "0") != 0;
  }();
  return on;
}

inline KernelStat *register_kernel(const char *name) {
  static std::mutex mutex;
  const std::lock_guard<std::mutex> lock(mutex);
  const int i = kernel_stat_count().load();
  if (i >= kMaxKernels) return nullptr;
  kernel_stat_table()[i].name = name;
  kernel_stat_count().store(i + 1);
  return &kernel_stat_table()[i];
}

class KernelTimer {
 public:
  explicit KernelTimer(KernelStat *stat) : stat_(profiling() ? stat : nullptr) {
    if (stat_ != nullptr) start_ = std::chrono::steady_clock::now();
  }
  ~KernelTimer() {
    if (stat_ == nullptr) return;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_);
    stat_->calls.fetch_add(1, std::memory_order_relaxed);
    stat_->nanoseconds.fetch_add(ns.count(), std::memory_order_relaxed);
  }
  KernelTimer(const KernelTimer &) = delete;
  KernelTimer &operator=(const KernelTimer &) = delete;

 private:
  KernelStat *stat_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace effnet

// Defines the exported kernel `name` (AOT signature above) as `return call;`, where `call` may use the parameters
// nparam, params, ndims, shapes and dtypes.  Every exported kernel goes through this macro, so each is timed.
#define EFFNET_KERNEL(name, call)                                                                                \
  extern "C" int name(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,     \
                      void *) {                                                                                  \
    static effnet::KernelStat *const stat = effnet::register_kernel(#name);                                      \
    const effnet::KernelTimer timer(stat);                                                                       \
    return call;                                                                                                 \
  }
