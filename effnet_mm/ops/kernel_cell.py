"""What every kernel layer shares: whether the kernels can run here, the one fallback warning, the float32 cell that
keeps them out of mixed precision, the per-layer switch, and the ``ops.Custom`` factory.

The kernels are used when the device target is CPU, a C++ compiler builds the library, and ``EFFNET_MM_KERNELS``
(or its old name ``EFFNET_MM_FAST_CONV``) is not ``0``; otherwise every kernel layer computes with MindSpore ops
and, unless the user switched the kernels off, one warning names the reason and the layer that met it first.
"""
from __future__ import annotations

import ctypes
import functools
import os
import warnings
from typing import Callable, Optional

import mindspore as ms
from mindspore import nn, ops

from .build import KernelBuildError, library_path

#: Set to ``0`` / ``false`` / ``off`` / ``no`` to compute every layer with MindSpore's own ops.
ENABLE_ENV = 'EFFNET_MM_KERNELS'
#: The variable's name before the kernels covered more than convolutions; still honoured.
DEPRECATED_ENABLE_ENV = 'EFFNET_MM_FAST_CONV'
#: Threads per kernel (default: ``OMP_NUM_THREADS`` as the process started with, else every core).
THREADS_ENV = 'EFFNET_MM_NUM_THREADS'
_OFF = ('0', 'false', 'off', 'no')


def _disabled_by_env() -> Optional[str]:
    for name in (ENABLE_ENV, DEPRECATED_ENABLE_ENV):
        if os.environ.get(name, '1').strip().lower() in _OFF:
            return f'disabled by {name}={os.environ[name]}'
    return None


@functools.cache
def _build_failure() -> Optional[str]:
    # Cached: the compiler runs (or fails) once per process, not once per layer.
    try:
        library_path()
    except KernelBuildError as exc:
        return f'kernel build failed: {exc}'
    return None


def kernels_unavailable_reason() -> Optional[str]:
    """Why the CPU kernels cannot be used in this process right now, or None when they can."""
    disabled = _disabled_by_env()
    if disabled is not None:
        return disabled
    target = ms.get_context('device_target')
    if target != 'CPU':
        return f'device target is {target}, the kernels are CPU-only'
    return _build_failure()


_warned = set()


def warn_fallback_once(reason: str, layer: str) -> None:
    """Warn once per reason and process that ``layer`` (and every later kernel layer) uses MindSpore ops instead."""
    if reason in _warned or reason.startswith('disabled by'):  # an explicit opt-out needs no warning
        return
    _warned.add(reason)
    warnings.warn(f'effnet_mm: CPU kernels unavailable ({reason}); {layer} and the other kernel layers (k x k convs, '
                  f'BatchNorm + SiLU, SiLU, SE mean and gate, input normalisation) use MindSpore ops, which are much '
                  f'slower on CPU',
                  RuntimeWarning, stacklevel=4)


def kernel_threads() -> int:
    """Threads per kernel: ``EFFNET_MM_NUM_THREADS``, else ``OMP_NUM_THREADS``, else every core this process may use.

    Read from ``os.environ``, the environment the process started with: importing MindSpore sets
    ``OMP_NUM_THREADS=1`` in the C environment (not in ``os.environ``), which the library would otherwise read.
    """
    for name in (THREADS_ENV, 'OMP_NUM_THREADS'):
        value = os.environ.get(name, '').strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


@functools.cache
def _configured_library() -> str:
    # Once per process, before any kernel runs (the thread pool starts with the first kernel call).  dlopen of the
    # same path returns the handle MindSpore uses.
    path = str(library_path())
    ctypes.CDLL(path).effnet_set_kernel_threads(ctypes.c_int(kernel_threads()))
    return path


def aot_op(func: str, out_shape: Callable, out_dtype: Callable, bprop: Optional[Callable] = None) -> ops.Custom:
    """The ``ops.Custom`` AOT primitive of kernel ``func`` of the compiled library (see kernels.h)."""
    return ops.Custom(f'{_configured_library()}:{func}', out_shape=out_shape, out_dtype=out_dtype, func_type='aot',
                      bprop=bprop)


def like(index: int) -> Callable:
    """An ``out_shape``/``out_dtype`` function returning the shape/dtype of input ``index``."""

    def pick(*args):
        return args[index]

    return pick


class Float32Cell(nn.Cell):
    """Base of the cells that call float32-only kernels: stays float32 under mixed precision.

    MindSpore's AMP (``to_float(float16)`` / ``auto_mixed_precision`` O2/O3) casts the inputs of every op of a
    float16 cell, custom ops included.  This cell marks itself float32 (which the rewrite-based AMP respects and does
    not descend into) and refuses the float16/bfloat16 flags a parent's ``to_float`` pushes down, so MindSpore casts
    its inputs to float32 at the cell boundary, as it does for BatchNorm.
    """

    def __init__(self) -> None:
        super().__init__()
        self.to_float(ms.float32)

    def add_flags_recursive(self, **flags):
        """Apply cell flags, except that the precision flags always say float32."""
        if any(flags.get(key) for key in ('fp16', 'bf16')):
            flags.update(fp16=False, bf16=False, fp32=True)
        return super().add_flags_recursive(**flags)


class KernelSwitch:
    """Mixin of every layer with a kernel path: the ``use_kernel`` flag and :meth:`enable_kernel`.

    A layer calls ``self.enable_kernel(True)`` at the end of its ``__init__``; ``construct`` branches on
    ``self.use_kernel`` (a compile-time constant under jit).  Subclasses define :meth:`make_kernel` (build the kernel
    cell or primitive, stored as ``self.kernel``) and may override :meth:`kernel_applies` (False for configurations
    the kernels do not cover, which then always use MindSpore ops, without a warning).
    :func:`effnet_mm.ops.set_kernels` / :func:`effnet_mm.ops.kernels_disabled` switch a whole model.  (No class
    attributes here: ``nn.Cell`` keeps sub-cells out of the instance dict, so a class default would shadow them.)
    """

    def kernel_applies(self) -> bool:
        """Whether the kernels cover this layer's configuration."""
        return True

    def make_kernel(self):
        """Build (or fetch the shared) kernel primitive or cell of this layer; every subclass defines it."""
        raise TypeError(f'{type(self).__name__} does not define make_kernel()')

    def enable_kernel(self, enabled: bool = True) -> bool:
        """Use the CPU kernel (True) or MindSpore ops (False); return whether the kernel is now used.

        A graph that is already compiled keeps the path it was compiled with: switch before ``ms.jit``/``ms.export``.
        """
        if not enabled or not self.kernel_applies():
            self.use_kernel = False
            return False
        reason = kernels_unavailable_reason()
        if reason is not None:
            warn_fallback_once(reason, type(self).__name__)
            self.use_kernel = False
            return False
        if self.kernel is None:
            self.kernel = self.make_kernel()
        self.use_kernel = True
        return True

    @property
    def fast_conv(self) -> bool:
        """Deprecated name of :attr:`use_kernel`."""
        return self.use_kernel

    def enable_fast_conv(self, enabled: bool = True) -> bool:
        """Deprecated name of :meth:`enable_kernel`."""
        warnings.warn('enable_fast_conv() is deprecated; use enable_kernel()', DeprecationWarning, stacklevel=2)
        return self.enable_kernel(enabled)


class KernelCell(KernelSwitch, Float32Cell):
    """A parameter-free float32 cell computing with a kernel when available, else with MindSpore ops."""

    def __init__(self) -> None:
        super().__init__()
        self.use_kernel = False
        self.kernel = None
        self.enable_kernel(True)
