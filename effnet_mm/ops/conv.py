"""The k x k convolution kernels (``conv.cc``) as MindSpore primitives with their backward (``bprop``).

Two kernel families, both NCHW float32, stride 1 or 2, padded like TF "SAME" (``padding='same'``) or ``k // 2`` on
every side like PyTorch (``padding='symmetric'``):

* ``'depthwise'``: ``groups == in == out`` (EfficientNet's 3x3 / 5x5 depthwise convs);
* ``'dense'``: ``groups == 1`` (the 3-channel stem; correct for any channel count, fast for few input channels).
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

from .kernel_cell import Float32Cell, aot_op, like

KINDS = ('depthwise', 'dense')
STRIDES = (1, 2)
PADDINGS = ('same', 'symmetric')
_FUNC_PREFIX = {'depthwise': 'effnet_dw', 'dense': 'effnet_dense'}


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


def _out_dim(size: int, kernel_size: int, stride: int, padding: str) -> int:
    if size < 0:
        return size  # keep -1 (dynamic) as is
    if padding == 'same':
        return -(-size // stride)
    return (size + 2 * (kernel_size // 2) - kernel_size) // stride + 1


@functools.cache
def conv_op(kind: str, stride: int, padding: str = 'same') -> Callable:
    """The forward primitive ``(x, w) -> y`` of a kernel family, stride and padding, with its ``bprop``.

    Primitives are shared by every layer of the same kind, stride and padding.  The caller must have checked
    :func:`effnet_mm.ops.kernels_unavailable_reason` first.
    """
    if kind not in KINDS or stride not in STRIDES or padding not in PADDINGS:
        raise ValueError(f'conv_op: unsupported kind={kind!r} / stride={stride} / padding={padding!r}')
    name = f'{_FUNC_PREFIX[kind]}_{{}}_s{stride}{"_sym" if padding == "symmetric" else ""}'
    # The backward kernels take one extra input only for the shape of their output.
    grad_x = aot_op(name.format('bwd_x'), out_shape=like(2), out_dtype=like(2))
    grad_w = aot_op(name.format('bwd_w'), out_shape=like(2), out_dtype=like(2))

    def bprop(x, w, out, dout):
        return grad_x(dout, w, x), grad_w(dout, x, w)

    def out_shape(x_shape, w_shape):
        k = w_shape[2]
        return (x_shape[0], w_shape[0], _out_dim(x_shape[2], k, stride, padding),
                _out_dim(x_shape[3], k, stride, padding))

    return aot_op(name.format('fwd'), out_shape=out_shape, out_dtype=like(0), bprop=bprop)


class Float32Conv(Float32Cell):
    """``(x, weight) -> conv(x, weight)`` on the kernel of one family, stride and padding (see :class:`Float32Cell`)."""

    def __init__(self, kind: str, stride: int, padding: str = 'same') -> None:
        super().__init__()
        self.op = conv_op(kind, stride, padding)

    def construct(self, x, weight):
        return self.op(x, weight)
