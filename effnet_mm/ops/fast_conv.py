"""MindSpore ``ops.Custom`` AOT wrappers of the C++ k x k conv kernels, with their backward (``bprop``).

Two kernel families, both NCHW float32 with TF "SAME" padding and stride 1 or 2:

* ``'depthwise'``: ``groups == in == out`` (EfficientNet's 3x3 / 5x5 depthwise convs);
* ``'dense'``: ``groups == 1`` (the 3-channel stem; correct for any channel count, fast for few input channels).

Whether the fast path can be used at all is decided once per process by :func:`fast_conv_unavailable_reason`
(environment switch, device target, compiler); when it cannot, callers fall back to MindSpore's ``Conv2D`` and a
single warning says why.
"""
from __future__ import annotations

import functools
import os
import warnings
from typing import Callable, Optional, Tuple

import mindspore as ms
from mindspore import nn, ops

from .build import KernelBuildError, library_path

#: Set to ``0`` / ``false`` / ``off`` to always use MindSpore's own ``Conv2D``.
ENABLE_ENV = 'EFFNET_MM_FAST_CONV'
KINDS = ('depthwise', 'dense')
STRIDES = (1, 2)
_FUNC_PREFIX = {'depthwise': 'effnet_dw', 'dense': 'effnet_dense'}


def fast_conv_enabled_by_env() -> bool:
    """False when ``EFFNET_MM_FAST_CONV`` is set to 0/false/off/no."""
    return os.environ.get(ENABLE_ENV, '1').strip().lower() not in ('0', 'false', 'off', 'no')


@functools.cache
def _build_failure() -> Optional[str]:
    # Cached: the compiler runs (or fails) once per process, not once per conv layer.
    try:
        library_path()
    except KernelBuildError as exc:
        return f'kernel build failed: {exc}'
    return None


def fast_conv_unavailable_reason() -> Optional[str]:
    """Why the fast kernels cannot be used in this process right now, or None when they can."""
    if not fast_conv_enabled_by_env():
        return f'disabled by {ENABLE_ENV}={os.environ[ENABLE_ENV]}'
    target = ms.get_context('device_target')
    if target != 'CPU':
        return f'device target is {target}, the kernels are CPU-only'
    return _build_failure()


_warned = set()


def warn_fallback_once(reason: str) -> None:
    """Warn (once per distinct reason and process) that MindSpore's slower ``Conv2D`` is used instead."""
    if reason in _warned or reason.startswith('disabled by'):  # an explicit opt-out needs no warning
        return
    _warned.add(reason)
    warnings.warn(f'effnet_mm: fast CPU convolution unavailable ({reason}); using MindSpore Conv2D, which runs '
                  f'k x k convs on oneDNN\'s reference kernel and is much slower on CPU', RuntimeWarning, stacklevel=3)


def supported_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int) -> Optional[str]:
    """The kernel family for a conv configuration (``'depthwise'`` / ``'dense'``), or None if none applies.

    1x1 convs are left to MindSpore: oneDNN already runs them on fast matmul kernels.
    """
    if kernel_size < 2 or kernel_size > 15 or stride not in STRIDES:
        return None
    if groups == in_channels == out_channels:
        return 'depthwise'
    if groups == 1:
        return 'dense'
    return None


def _out_dim(size: int, stride: int) -> int:
    return size if size < 0 else -(-size // stride)  # keep -1 (dynamic) as is


def _make_ops(kind: str, stride: int) -> Tuple[ops.Custom, ops.Custom, ops.Custom]:
    lib = str(library_path())
    prefix = _FUNC_PREFIX[kind]

    def fwd_shape(x_shape, w_shape):
        return (x_shape[0], w_shape[0], _out_dim(x_shape[2], stride), _out_dim(x_shape[3], stride))

    def like_third(a, b, c):  # backward ops return the shape/dtype of their third (shape-only) input
        return c

    grad_x = ops.Custom(f'{lib}:{prefix}_bwd_x_s{stride}', out_shape=like_third, out_dtype=like_third,
                        func_type='aot')
    grad_w = ops.Custom(f'{lib}:{prefix}_bwd_w_s{stride}', out_shape=like_third, out_dtype=like_third,
                        func_type='aot')

    def bprop(x, w, out, dout):
        return grad_x(dout, w, x), grad_w(dout, x, w)

    forward = ops.Custom(f'{lib}:{prefix}_fwd_s{stride}', out_shape=fwd_shape, out_dtype=lambda x, w: x,
                         func_type='aot', bprop=bprop)
    return forward, grad_x, grad_w


@functools.cache
def _cached_ops(kind: str, stride: int) -> Tuple[ops.Custom, ops.Custom, ops.Custom]:
    return _make_ops(kind, stride)


class Float32Cell(nn.Cell):
    """Base of the cells wrapping float32-only custom kernels: stays float32 under mixed precision.

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


class Float32Conv(Float32Cell):
    """``(x, weight) -> conv(x, weight)`` on the fast kernel of one family and stride (see :class:`Float32Cell`)."""

    def __init__(self, kind: str, stride: int) -> None:
        super().__init__()
        self.op = conv_op(kind, stride)

    def construct(self, x, weight):
        return self.op(x, weight)


def conv_op(kind: str, stride: int) -> Callable:
    """The forward ``ops.Custom`` primitive ``(x, w) -> y`` of a kernel family and stride, with its ``bprop``.

    Primitives are shared by every layer of the same kind and stride.  The caller must have checked
    :func:`fast_conv_unavailable_reason` first.
    """
    if kind not in KINDS or stride not in STRIDES:
        raise ValueError(f'conv_op: unsupported kind={kind!r} / stride={stride}')
    return _cached_ops(kind, stride)[0]


def grad_ops(kind: str, stride: int) -> Tuple[Callable, Callable]:
    """The backward primitives ``(dy, w, x) -> dx`` and ``(dy, x, w) -> dw`` (for benchmarks and tests)."""
    return _cached_ops(kind, stride)[1:]
