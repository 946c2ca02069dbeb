// Shared by every source of effnet_mm's CPU kernel library (MindSpore `ops.Custom(func_type="aot")`): the return
// codes, argument checks, the thread policy, the export macro and the optional per-kernel timer.  It is part of the
// library's build hash (effnet_mm/ops/build.py), so changing it rebuilds the library.
//
// Every exported kernel has MindSpore's AOT CPU signature
//     int f(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream, void *extra)
// with the inputs first and the outputs last; it returns kOk (0) on success and one of the Status codes otherwise,
// which makes MindSpore raise.  Backward kernels that need an output shape take one extra input only for its shape.
#pragma once

#include <omp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace effnet {

enum Status : int {
  kOk = 0,
  kBadArgs = 1,   // wrong number of inputs/outputs or wrong ranks
  kBadDtype = 2,  // not float32
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

// Threads per kernel: $EFFNET_MM_NUM_THREADS, else $OMP_NUM_THREADS, else every core of the process.
inline int kernel_threads() {
  static const int n = [] {
    for (const char *name : {"EFFNET_MM_NUM_THREADS", "OMP_NUM_THREADS"}) {
      const char *value = std::getenv(name);
      if (value != nullptr && std::atoi(value) > 0) return std::atoi(value);
    }
    return omp_get_num_procs() > 0 ? omp_get_num_procs() : 1;
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
