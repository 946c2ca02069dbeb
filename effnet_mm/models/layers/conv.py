"""Convolution with TF "SAME" padding: the one conv layer every EfficientNet conv goes through."""
from __future__ import annotations

import math
from typing import Optional

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal, Zero, initializer

from effnet_mm.ops.conv import Float32Conv, PointwiseConv, supported_conv
from effnet_mm.ops.kernel_cell import KernelSwitch
from effnet_mm.registry import MODELS
from effnet_mm.variants import PADDINGS


def tf_same_padding(size: int, kernel_size: int, stride: int, dilation: int = 1) -> tuple:
    """Static TF "SAME" padding of one spatial axis: ``(before, after)``; the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel_size - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


@MODELS.register_module()
class Conv2dSame(KernelSwitch, nn.Cell):
    """2-D convolution with static TF "SAME" (or PyTorch symmetric) padding and TF's EfficientNet initialisation.

    With ``padding='same'`` (the default) the output size is ``ceil(in / stride)``; for even totals the padding is
    symmetric, otherwise the extra row/column goes to the bottom/right, exactly like TensorFlow (MindSpore's
    ``pad_mode='same'``).  ``padding='symmetric'`` pads ``k // 2`` on every side like PyTorch's ``Conv2d`` in timm's
    own ``efficientnet_*`` models; it differs from "SAME" only for stride 2 on even input sizes.  The weight layout is
    ``(out, in / groups, k, k)`` and the parameters are named ``weight`` / ``bias`` like ``nn.Conv2d``, so
    checkpoints do not depend on how the convolution is computed.

    **Computation.** On CPU, k x k depthwise and dense convs (stride 1/2) run on effnet_mm's C++ kernels
    (:mod:`effnet_mm.ops`; MindSpore would use oneDNN's reference kernel, 50-140x slower), and 1x1 convs keep
    MindSpore's forward with a faster backward (:class:`effnet_mm.ops.conv.PointwiseConv`); other groupings, other
    devices, and layers switched off with :meth:`enable_kernel` or :func:`effnet_mm.ops.set_kernels` (needed before
    MindIR/ONNX export) use MindSpore's ``Conv2D``.  Both give the same results to float32 rounding (the kernels
    compute in float32 also under mixed precision).

    Initialisation follows the TF reference: an untruncated normal with ``std = sqrt(2 / fan_out)``,
    ``fan_out = k * k * out / groups``; the bias starts at zero.

    Example config::

        conv = dict(type='Conv2dSame', in_channels=3, out_channels=32, kernel_size=3, stride=2)

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: stride of both spatial axes.
        groups: channel groups (``groups == in_channels == out_channels`` is a depthwise conv).
        bias: add a learned bias.
        padding: ``'same'`` (TF static SAME) or ``'symmetric'`` (``k // 2`` on every side).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 groups: int = 1,
                 bias: bool = False,
                 padding: str = 'same') -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f'Conv2dSame: padding must be one of {PADDINGS}, got {padding!r}')
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'Conv2dSame: in_channels={in_channels} and out_channels={out_channels} must both be '
                             f'divisible by groups={groups}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.groups = groups
        self.has_bias = bias
        self.padding = padding
        fan_out = kernel_size * kernel_size * out_channels // groups
        shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        self.weight = Parameter(
            initializer(Normal(sigma=math.sqrt(2.0 / fan_out)), shape, ms.float32), name='weight')
        self.bias: Optional[Parameter] = None
        if bias:
            self.bias = Parameter(initializer(Zero(), (out_channels, ), ms.float32), name='bias')
        # A (k, k) tuple: MindSpore 2.10's ONNX exporter rejects an int kernel_size ("Int64Imm to ValueTuple").
        pad_args = dict(pad_mode='same') if padding == 'same' else dict(pad_mode='pad', pad=kernel_size // 2)
        self.conv2d = ops.Conv2D(
            out_channel=out_channels, kernel_size=(kernel_size, kernel_size), stride=stride, group=groups, **pad_args)
        self.bias_add = ops.BiasAdd()
        # Kernel family ('depthwise' / 'dense'), None when MindSpore's Conv2D is the only option.  Symmetric padding
        # equals TF "SAME" for stride 1 and odd kernels, which then share the "SAME" kernels.
        self.kernel_kind = supported_conv(in_channels, out_channels, kernel_size, stride, groups)
        same_as_tf = padding == 'same' or (stride == 1 and kernel_size % 2 == 1)
        self.kernel_padding = 'same' if same_as_tf else 'symmetric'
        self.use_kernel = False
        self.kernel = None
        self.enable_kernel(True)

    def kernel_applies(self) -> bool:
        return self.kernel_kind is not None

    def make_kernel(self) -> nn.Cell:
        if self.kernel_kind == 'pointwise':
            return PointwiseConv(self.in_channels, self.out_channels)
        return Float32Conv(self.kernel_kind, self.stride, self.kernel_padding)

    def construct(self, x):
        # ``use_kernel`` is a compile-time constant under jit, so only one branch ends up in the graph.
        if self.use_kernel:
            # A float32 cell (see Float32Conv): under mixed precision it computes in float32 and the result goes back
            # to the layer's own dtype, as MindSpore's conv would return it (the bias of an fp16 layer is fp16).
            y = self.kernel(x, self.weight).astype(x.dtype)
        else:
            y = self.conv2d(x, self.weight)
        if self.has_bias:
            y = self.bias_add(y, self.bias)
        return y

    def extend_repr(self) -> str:
        return (f'in_channels={self.in_channels}, out_channels={self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, groups={self.groups}, bias={self.has_bias}, padding={self.padding}, '
                f'use_kernel={self.use_kernel}')
