from __future__ import annotations

from typing import Mapping, Optional

from mindspore import nn

from effnet_mm.registry import MODELS

from ..layers import ConvBNAct, DropPath, SqueezeExcitation


@MODELS.register_module()
class MBConv(nn.Cell):
    """EfficientNet mobile inverted-bottleneck block (TF ``MBConvBlock``).

    ``expand_conv`` (1x1, only when ``expand_ratio != 1``) → ``depthwise_conv`` (k×k, carries the stride) →
    ``se`` → ``linear_conv`` (1x1 projection, BN, no activation) → drop-connect + identity skip when the block keeps
    its shape (stride 1 and ``in_channels == out_channels``).  With ``expand_ratio == 1`` this is TF's
    depthwise-separable first-stage block.

    Example config::

        block = dict(type='MBConv', in_channels=16, out_channels=24, kernel_size=3, stride=2, expand_ratio=6)

    Args:
        in_channels: block input channels.
        out_channels: block output channels.
        kernel_size: depthwise kernel size.
        stride: depthwise stride.
        expand_ratio: width multiplier of the hidden layer.
        se_ratio: SE bottleneck width relative to ``in_channels`` (0 disables SE).
        drop_path_rate: drop-connect probability of the residual branch.
        norm_cfg: normalisation of every conv (None: TF's BN, see :func:`~effnet_mm.models.layers.build_norm_layer`).
        padding: ``'same'`` (TF) or ``'symmetric'`` (PyTorch ``k // 2``) padding of the depthwise conv.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int,
                 expand_ratio: int,
                 se_ratio: float = 0.25,
                 drop_path_rate: float = 0.0,
                 norm_cfg: Optional[Mapping] = None,
                 padding: str = 'same') -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.expand_ratio = expand_ratio
        hidden = in_channels * expand_ratio
        self.expand_conv = ConvBNAct(in_channels, hidden, 1, norm_cfg=norm_cfg) if expand_ratio != 1 else None
        self.depthwise_conv = ConvBNAct(hidden, hidden, kernel_size, stride=stride, groups=hidden, norm_cfg=norm_cfg,
                                        padding=padding)
        self.se = None
        if se_ratio > 0:
            self.se = SqueezeExcitation(hidden, max(1, int(in_channels * se_ratio)))
        self.linear_conv = ConvBNAct(hidden, out_channels, 1, act=False, norm_cfg=norm_cfg)
        self.has_skip = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path_rate) if self.has_skip and drop_path_rate > 0 else None
        #: Row of this block in the backbone's ``drop_masks`` (set by :class:`EfficientNet`).
        self.drop_path_index = 0

    def construct(self, x, drop_masks=None):
        """``drop_masks``: optional ``(num_drop_path_blocks, N)`` per-sample drop-path factors of the backbone."""
        out = x
        if self.expand_conv is not None:
            out = self.expand_conv(out)
        out = self.depthwise_conv(out)
        if self.se is not None:
            out = self.se(out)
        out = self.linear_conv(out)
        if self.has_skip:
            if self.drop_path is not None:
                keep = None if drop_masks is None else drop_masks[self.drop_path_index]
                out = self.drop_path(out, keep)
            out = out + x
        return out
