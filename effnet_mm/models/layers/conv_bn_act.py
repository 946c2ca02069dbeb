from __future__ import annotations

from mindspore import nn

from effnet_mm.ops import BatchNormAct2d
from effnet_mm.registry import MODELS
from effnet_mm.variants import BN_EPS, BN_MOMENTUM

from .conv import Conv2dSame


@MODELS.register_module()
class ConvBNAct(nn.Cell):
    """``Conv2dSame`` → BatchNorm (TF eps 1e-3 / momentum 0.99) with an optional swish.

    Parameters are named ``conv.weight`` and ``bn.{gamma,beta,moving_mean,moving_variance}``.  The norm layer is
    :class:`effnet_mm.ops.BatchNormAct2d` (an ``nn.BatchNorm2d`` that applies the swish itself, on CPU kernels).

    Example config::

        stem = dict(type='ConvBNAct', in_channels=3, out_channels=32, kernel_size=3, stride=2)

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: conv stride.
        groups: conv groups (``in_channels`` for a depthwise conv).
        act: apply swish (SiLU) after BN.
        bn_eps: BatchNorm epsilon.
        bn_momentum: fraction of the old moving statistics kept at each update.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 groups: int = 1,
                 act: bool = True,
                 bn_eps: float = BN_EPS,
                 bn_momentum: float = BN_MOMENTUM) -> None:
        super().__init__()
        self.conv = Conv2dSame(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=False)
        self.bn = BatchNormAct2d(out_channels, eps=bn_eps, momentum=bn_momentum, act=act)

    def construct(self, x):
        return self.bn(self.conv(x))
