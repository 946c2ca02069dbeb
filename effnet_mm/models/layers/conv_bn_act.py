from __future__ import annotations

from mindspore import nn

from effnet_mm.ops import SiLU
from effnet_mm.registry import MODELS
from effnet_mm.variants import BN_EPS, BN_MOMENTUM

from .conv import Conv2dSame


@MODELS.register_module()
class ConvBNAct(nn.Cell):
    """``Conv2dSame`` → BatchNorm (TF eps 1e-3 / momentum 0.99) → optional swish.

    Parameters are named ``conv.weight`` and ``bn.{gamma,beta,moving_mean,moving_variance}``.

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
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.act = SiLU() if act else None  # fused swish kernel on CPU (falls back to nn.SiLU)

    def construct(self, x):
        x = self.bn(self.conv(x))
        if self.act is not None:
            x = self.act(x)
        return x
