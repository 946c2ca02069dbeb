from __future__ import annotations

from mindspore import nn

from effnet_mm.ops import SigmoidGate, SiLU, SpatialMean
from effnet_mm.registry import MODELS

from .conv import Conv2dSame


@MODELS.register_module()
class SqueezeExcitation(nn.Cell):
    """Squeeze-and-excitation gate of an MBConv block: mean → 1x1 reduce → swish → 1x1 expand → sigmoid → scale.

    Both 1x1 convs carry a bias (``conv1.{weight,bias}``, ``conv2.{weight,bias}``).  In EfficientNet the reduced width
    is computed from the block *input* channels (``max(1, int(in * 0.25))``), not from the expanded ones.

    Example config::

        se = dict(type='SqueezeExcitation', channels=96, reduced_channels=4)

    Args:
        channels: channels of the gated feature map.
        reduced_channels: width of the bottleneck.
    """

    def __init__(self, channels: int, reduced_channels: int) -> None:
        super().__init__()
        self.squeeze = SpatialMean()  # mean over H, W (CPU kernel; no parameters)
        self.conv1 = Conv2dSame(channels, reduced_channels, 1, bias=True)
        self.act = SiLU()  # swish kernel (falls back to nn.SiLU)
        self.conv2 = Conv2dSame(reduced_channels, channels, 1, bias=True)
        # x * sigmoid(s) in one kernel with a fused gradient (no parameters): MindSpore's CPU Sigmoid is a
        # low-precision approximation that dominated the converted-TF logits error (falls back to Sigmoid + Mul).
        self.gate = SigmoidGate()

    def construct(self, x):
        s = self.conv2(self.act(self.conv1(self.squeeze(x))))
        return self.gate(x, s)
