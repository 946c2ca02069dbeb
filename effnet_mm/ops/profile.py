"""Per-kernel call counts and wall time, collected inside the kernel library when ``EFFNET_MM_KERNEL_PROFILE`` is
set before the library is first used (``benchmarks/profile_step.py`` reads them next to MindSpore's profiler)."""
from __future__ import annotations

import ctypes
import functools
from typing import Dict, Tuple

from .build import library_path

#: Set (to anything but ``0``) before the first kernel call to time every kernel call.
PROFILE_ENV = 'EFFNET_MM_KERNEL_PROFILE'


@functools.cache
def _library() -> ctypes.CDLL:
    # The same path MindSpore loaded: dlopen returns that handle, so the counters are the ones the kernels update.
    lib = ctypes.CDLL(str(library_path()))
    lib.effnet_kernel_stats.argtypes = [ctypes.c_char_p, ctypes.c_int64]
    lib.effnet_kernel_stats.restype = ctypes.c_int64
    lib.effnet_kernel_stats_reset.restype = None
    return lib


def kernel_stats() -> Dict[str, Tuple[int, float]]:
    """``{kernel function: (calls, seconds)}`` since the last :func:`reset_kernel_stats` (empty when not profiling)."""
    lib = _library()
    size = 1 << 16
    while True:
        buf = ctypes.create_string_buffer(size)
        needed = lib.effnet_kernel_stats(buf, size)
        if needed < size:
            break
        size = needed + 1
    stats = {}
    for line in buf.value.decode().splitlines():
        name, calls, nanoseconds = line.split()
        stats[name] = (int(calls), int(nanoseconds) * 1e-9)
    return stats


def reset_kernel_stats() -> None:
    """Zero every kernel's counters."""
    _library().effnet_kernel_stats_reset()
