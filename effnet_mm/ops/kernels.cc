// Library-wide functions of effnet_mm's CPU kernel library (see kernels.h).
#include <cstdio>

#include "kernels.h"

// Writes one "name calls nanoseconds" line per kernel called since the last reset into buf (NUL-terminated, cut at
// size) and returns the length the full text needs; all zeros unless $EFFNET_MM_KERNEL_PROFILE was set.
extern "C" int64_t effnet_kernel_stats(char *buf, int64_t size) {
  int64_t used = 0;
  const int count = effnet::kernel_stat_count().load();
  for (int i = 0; i < count; ++i) {
    const effnet::KernelStat &stat = effnet::kernel_stat_table()[i];
    const int64_t calls = stat.calls.load();
    if (calls == 0) continue;
    char line[256];
    const int n = std::snprintf(line, sizeof(line), "%s %lld %lld\n", stat.name, static_cast<long long>(calls),
                                static_cast<long long>(stat.nanoseconds.load()));
    if (n > 0 && used + n < size) std::memcpy(buf + used, line, static_cast<size_t>(n));
    used += n > 0 ? n : 0;
  }
  if (size > 0) buf[used < size ? used : size - 1] = '\0';
  return used;
}

// Zeroes every kernel's counters.
extern "C" void effnet_kernel_stats_reset() {
  const int count = effnet::kernel_stat_count().load();
  for (int i = 0; i < count; ++i) {
    effnet::kernel_stat_table()[i].calls.store(0);
    effnet::kernel_stat_table()[i].nanoseconds.store(0);
  }
}

// Threads per kernel (see kernel_threads); effective only before the first kernel call starts the thread pool.
extern "C" void effnet_set_kernel_threads(int threads) { effnet::kernel_threads_setting().store(threads); }

// The threads per kernel in effect (fixed by the first kernel call).
extern "C" int effnet_kernel_threads() { return effnet::kernel_threads(); }
