"""The k x k convolution kernels (``conv.cc``) as MindSpore primitives with their backward (``bprop``).

Two k x k kernel families, both NCHW float32, stride 1 or 2, padded like TF "SAME" (``padding='same'``) or
``k // 2`` on every side like PyTorch (``padding='symmetric'``):

* ``'depthwise'``: ``groups == in == out`` (EfficientNet's 3x3 / 5x5 depthwise convs);
* ``'dense'``: ``groups == 1`` (the 3-channel stem; correct for any channel count, fast for few input channels).

and the 1x1 convs (``'pointwise'``, stride 1, ``groups == 1``), whose forward stays with MindSpore (oneDNN's matmul
kernels are fast there) but whose backward is rebuilt: the weight gradient on a kernel for maps of at least
``POINTWISE_MIN_PIXELS`` pixels (oneDNN's NCHW backward-weights kernel is 2.5-4x slower there, faster on the small
late-stage maps), and the input gradient as a forward 1x1 conv with the transposed weight (oneDNN runs its forward
convs faster than its backward-data kernel).  In eval mode, maps of at most ``POINTWISE_EVAL_MAX_PIXELS`` pixels
(B0's 7x7 at 224 px) run the forward on a kernel that takes the columns of all images as one matrix (oneDNN works
per image there), with a following BatchNorm (+ SiLU) in its epilogue (:class:`PointwiseBNInference`).
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import mindspore as ms
from mindspore import Tensor, ops
from mindspore.ops.operations import _grad_ops

from .batchnorm import bn_act_grad
from .kernel_cell import Float32Cell, KernelSwitch, aot_op, like

KINDS = ('depthwise', 'dense')
#: Smallest H * W whose 1x1 weight gradient runs on the kernel (28 x 28; oneDNN wins below, measured on B0 shapes).
POINTWISE_MIN_PIXELS = 784
#: Largest H * W whose eval-mode 1x1 forward runs on the kernel (8 x 8; measured in-graph on the 2-core AMD EPYC:
#: faster than oneDNN on B0's 7 x 7, level on B3's 10 x 10, slower on 14 x 14).
POINTWISE_EVAL_MAX_PIXELS = 64
STRIDES = (1, 2)
PADDINGS = ('same', 'symmetric')
_FUNC_PREFIX = {'depthwise': 'effnet_dw', 'dense': 'effnet_dense'}
_reshape = ops.Reshape()
_transpose = ops.Transpose()


def supported_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int) -> Optional[str]:
    """The kernel family for a conv configuration (``'depthwise'`` / ``'dense'`` / ``'pointwise'``), or None."""
    if kernel_size == 1 and stride == 1 and groups == 1:
        return 'pointwise'
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


def _kernel_name(kind: str, stride: int, padding: str) -> str:
    """The name pattern of a family's kernels (``{}`` stands for fwd / bwd_x / bwd_w), after checking the arguments."""
    if kind not in KINDS or stride not in STRIDES or padding not in PADDINGS:
        raise ValueError(f'conv_op: unsupported kind={kind!r} / stride={stride} / padding={padding!r}')
    return f'{_FUNC_PREFIX[kind]}_{{}}_s{stride}{"_sym" if padding == "symmetric" else ""}'


def conv_out_shape(stride: int, padding: str) -> Callable:
    """``(x_shape, w_shape) -> y_shape`` of a k x k conv of that stride and padding (the ``out_shape`` of its op)."""

    def out_shape(x_shape, w_shape, *_):
        k = w_shape[2]
        return (x_shape[0], w_shape[0], _out_dim(x_shape[2], k, stride, padding),
                _out_dim(x_shape[3], k, stride, padding))

    return out_shape


@functools.cache
def conv_grad(kind: str, stride: int, padding: str = 'same') -> Callable:
    """``(x, w, dy) -> (dx, dw)``: the backward of :func:`conv_op` on its kernels."""
    name = _kernel_name(kind, stride, padding)
    # The backward kernels take one extra input only for the shape of their output.
    grad_x = aot_op(name.format('bwd_x'), out_shape=like(2), out_dtype=like(2))
    grad_w = aot_op(name.format('bwd_w'), out_shape=like(2), out_dtype=like(2))

    def grads(x, w, dy):
        return grad_x(dy, w, x), grad_w(dy, x, w)

    return grads


@functools.cache
def conv_op(kind: str, stride: int, padding: str = 'same') -> Callable:
    """The forward primitive ``(x, w) -> y`` of a kernel family, stride and padding, with its ``bprop``.

    Primitives are shared by every layer of the same kind, stride and padding.  The caller must have checked
    :func:`effnet_mm.ops.kernels_unavailable_reason` first.
    """
    name = _kernel_name(kind, stride, padding)
    grads = conv_grad(kind, stride, padding)

    def bprop(x, w, out, dout):
        return grads(x, w, dout)

    return aot_op(name.format('fwd'), out_shape=conv_out_shape(stride, padding), out_dtype=like(0), bprop=bprop)


class Float32Conv(Float32Cell):
    """``(x, weight) -> conv(x, weight)`` on the kernel of one family, stride and padding (see :class:`Float32Cell`)."""

    def __init__(self, kind: str, stride: int, padding: str = 'same') -> None:
        super().__init__()
        self.op = conv_op(kind, stride, padding)

    def construct(self, x, weight):
        return self.op(x, weight)


#: Kernel sizes of the eval stem kernel (:class:`ConvBNSiLUInference`).
CONV_BN_SILU_KERNEL_SIZES = (3, 5, 7)


@functools.cache
def conv_bn_silu_op(stride: int, padding: str = 'same') -> ops.Custom:
    """``(x, w, gamma, beta, stats, eps) -> silu(bn(conv(x, w)))`` for a dense k x k conv (k in 3, 5, 7) with the BN on
    given statistics, with its ``bprop`` (through the separate conv and BN kernels)."""
    _kernel_name('dense', stride, padding)  # checks the arguments
    conv = conv_op('dense', stride, padding)
    conv_grads = conv_grad('dense', stride, padding)
    bn_grads = bn_act_grad(True, False)

    def bprop(x, w, gamma, beta, stats, eps, out, dout):
        d_bn = bn_grads(conv(x, w), gamma, beta, stats, eps, dout)
        dx, dw = conv_grads(x, w, d_bn[0])
        return (dx, dw) + d_bn[1:]

    name = f'effnet_dense_bn_silu_eval_s{stride}{"_sym" if padding == "symmetric" else ""}'
    return aot_op(name, out_shape=conv_out_shape(stride, padding), out_dtype=like(0), bprop=bprop)


class ConvBNSiLUInference(KernelSwitch, Float32Cell):
    """A dense k x k conv, its BatchNorm on the moving statistics and SiLU in one kernel: the eval-mode stem.

    ``(x, weight, gamma, beta, moving_mean, moving_variance) -> y``; called by
    :class:`~effnet_mm.models.layers.ConvBNAct` in eval mode (no parameters of its own).  Output channels are computed
    in blocks that load each input vector once (the training stem keeps its per-channel summation order, see
    ``conv.cc`` ``dense_bn_silu_eval``).

    Example (built by ``ConvBNAct``, not from a config)::

        stem = ConvBNSiLUInference(stride=2, padding='same', eps=1e-3)

    Args:
        stride: conv stride (1 or 2).
        padding: ``'same'`` (TF) or ``'symmetric'`` (``k // 2``), as the conv's kernel padding.
        eps: the BatchNorm's epsilon.
    """

    def __init__(self, stride: int, padding: str, eps: float) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.eps = Tensor([eps], ms.float32)
        self.use_kernel = False
        self.kernel = None
        self.enable_kernel(True)

    def make_kernel(self) -> ops.Custom:
        return conv_bn_silu_op(self.stride, self.padding)

    def construct(self, x, weight, gamma, beta, mean, variance):
        return self.kernel(x, weight, gamma, beta, ops.stack((mean, variance)), self.eps)


class PointwiseBNInference(KernelSwitch, Float32Cell):
    """A 1x1 conv and its BatchNorm on the moving statistics (+ SiLU) in one kernel, for small maps in eval mode.

    ``(x, weight, gamma, beta, moving_mean, moving_variance) -> y``; called by
    :class:`~effnet_mm.models.layers.ConvBNAct` in eval mode on maps of at most ``POINTWISE_EVAL_MAX_PIXELS`` pixels
    (no parameters of its own): the projection convs and the head conv of the last stages.

    Example (built by ``ConvBNAct``, not from a config)::

        head = PointwiseBNInference(in_channels=320, out_channels=1280, silu=True, eps=1e-3)

    Args:
        in_channels, out_channels: the conv's channels.
        silu: SiLU after the BatchNorm.
        eps: the BatchNorm's epsilon.
    """

    def __init__(self, in_channels: int, out_channels: int, silu: bool, eps: float) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.silu = silu
        self.eps = Tensor([eps], ms.float32)
        self.use_kernel = False
        self.kernel = None
        self.enable_kernel(True)

    def make_kernel(self) -> ops.Custom:
        return pointwise_eval_op(self.in_channels, self.out_channels, bn=True, silu=self.silu)

    def construct(self, x, weight, gamma, beta, mean, variance):
        return self.kernel(x, weight, gamma, beta, ops.stack((mean, variance)), self.eps)


@functools.cache
def pointwise_grads(in_channels: int, out_channels: int) -> Callable:
    """``(x, w, dy) -> (dx, dw)``: the backward of a 1x1 conv (stride 1, no groups; see the module docstring)."""
    conv_transposed = ops.Conv2D(out_channel=in_channels, kernel_size=(1, 1))
    grad_weight = aot_op('effnet_pw_bwd_w', out_shape=like(2), out_dtype=like(2))
    # MindSpore's own weight gradient (what autodiff of Conv2D uses) for the small maps.
    grad_weight_small = _grad_ops.Conv2DBackpropFilter(out_channels, (1, 1))

    def grads(x, weight, dout):
        # Primitives, not Tensor methods: each method call is a parsed graph of argument checks at compile time
        # (~0.8 s of B0's train-step compile over the 64 pointwise convs).
        transposed = _transpose(_reshape(weight, (out_channels, in_channels)), (1, 0))
        dx = conv_transposed(dout, _reshape(transposed, (in_channels, out_channels, 1, 1)))
        if x.shape[2] * x.shape[3] >= POINTWISE_MIN_PIXELS:  # static shapes: decided when the graph compiles
            dw = grad_weight(dout, x, weight)
        else:
            dw = grad_weight_small(dout, x, weight.shape)
        return dx, dw

    return grads


def small_maps(x) -> bool:
    """Whether the eval-mode 1x1 kernels (``pointwise_eval_op``) take ``x``: a static-shape check, decided when the
    graph compiles."""
    return x.shape[2] * x.shape[3] <= POINTWISE_EVAL_MAX_PIXELS


@functools.cache
def pointwise_eval_op(in_channels: int, out_channels: int, bn: bool = False, silu: bool = False) -> ops.Custom:
    """``(x, w) -> conv1x1(x, w)``, or with ``bn`` ``(x, w, gamma, beta, stats, eps) -> act(bn(conv1x1(x, w)))`` with
    the BN on given statistics and act SiLU when ``silu``: the small-map eval kernel, with its ``bprop`` (through
    MindSpore's conv, :func:`pointwise_grads` and the BN kernel's backward)."""
    conv_grads = pointwise_grads(in_channels, out_channels)
    if not bn:
        def bprop(x, w, out, dout):
            return conv_grads(x, w, dout)

        return aot_op('effnet_pw_eval', out_shape=_pointwise_out_shape, out_dtype=like(0), bprop=bprop)
    conv = ops.Conv2D(out_channel=out_channels, kernel_size=(1, 1))
    bn_grads = bn_act_grad(silu, False)

    def bprop_bn(x, w, gamma, beta, stats, eps, out, dout):
        d_bn = bn_grads(conv(x, w), gamma, beta, stats, eps, dout)
        dx, dw = conv_grads(x, w, d_bn[0])
        return (dx, dw) + d_bn[1:]

    return aot_op('effnet_pw_bn_silu_eval' if silu else 'effnet_pw_eval', out_shape=_pointwise_out_shape,
                  out_dtype=like(0), bprop=bprop_bn)


def _pointwise_out_shape(x, w, *bn):
    return (x[0], w[0], x[2], x[3])


class PointwiseConv(Float32Cell):
    """``(x, weight) -> conv1x1(x, weight)`` (stride 1, no groups) with the faster backward described above, and in
    eval mode on small maps the forward on a kernel."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv = ops.Conv2D(out_channel=out_channels, kernel_size=(1, 1))
        self.grads = pointwise_grads(in_channels, out_channels)
        self.small_maps_kernel = pointwise_eval_op(in_channels, out_channels)

    def construct(self, x, weight):
        if not self.training and small_maps(x):
            return self.small_maps_kernel(x, weight)
        return self.conv(x, weight)

    def bprop(self, x, weight, out, dout):
        return self.grads(x, weight, dout)
