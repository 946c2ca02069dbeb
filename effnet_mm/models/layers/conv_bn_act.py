from __future__ import annotations

import warnings
from typing import Mapping, Optional

from mindspore import nn

from effnet_mm.ops import BatchNormAct2d, SiLU
from effnet_mm.ops.batchnorm import on_moving_stats_kernel
from effnet_mm.ops.conv import CONV_BN_SILU_KERNEL_SIZES, ConvBNSiLUInference, PointwiseBNInference, small_maps
from effnet_mm.registry import MODELS
from effnet_mm.variants import NORM_CFG

from .conv import Conv2dSame
from .norm import build_norm_layer


@MODELS.register_module()
class ConvBNAct(nn.Cell):
    """``Conv2dSame`` → normalisation (TF's BN: eps 1e-3, decay 0.99) with an optional swish.

    Parameters are named ``conv.weight`` and ``bn.{gamma,beta,moving_mean,moving_variance}``.  With ``BN`` the norm
    layer is :class:`effnet_mm.ops.BatchNormAct2d` (an ``nn.BatchNorm2d`` that applies the swish itself, on CPU
    kernels); other norm types (``SyncBN``) are followed by a separate swish.  In eval mode a dense k x k conv (the
    stem) with BN + swish, and a 1x1 conv with BN (+ swish) on small maps (the last stages' projections and the head
    conv), run as one kernel (``inference_kernel``: :class:`~effnet_mm.ops.conv.ConvBNSiLUInference`,
    :class:`~effnet_mm.ops.conv.PointwiseBNInference`) on the same parameters.

    Example config::

        stem = dict(type='ConvBNAct', in_channels=3, out_channels=32, kernel_size=3, stride=2)

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: conv stride.
        groups: conv groups (``in_channels`` for a depthwise conv).
        act: apply swish (SiLU) after BN.
        norm_cfg: normalisation config, see :func:`~effnet_mm.models.layers.build_norm_layer` (None: TF's BN).
        padding: conv padding, ``'same'`` (TF) or ``'symmetric'`` (PyTorch ``k // 2``).
        bn_eps, bn_momentum: deprecated; use ``norm_cfg=dict(type='BN', eps=..., momentum=1 - bn_momentum)``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 groups: int = 1,
                 act: bool = True,
                 norm_cfg: Optional[Mapping] = None,
                 padding: str = 'same',
                 bn_eps: Optional[float] = None,
                 bn_momentum: Optional[float] = None) -> None:
        super().__init__()
        if bn_eps is not None or bn_momentum is not None:
            warnings.warn('ConvBNAct: bn_eps/bn_momentum are deprecated; use norm_cfg=dict(type="BN", eps=..., '
                          'momentum=1 - bn_momentum)', DeprecationWarning, stacklevel=2)
            norm_cfg = dict(norm_cfg or NORM_CFG)
            if bn_eps is not None:
                norm_cfg['eps'] = bn_eps
            if bn_momentum is not None:
                norm_cfg['momentum'] = 1.0 - bn_momentum
        self.conv = Conv2dSame(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=False,
                               padding=padding)
        # BatchNormAct2d applies the swish itself (one kernel pass each way on CPU); other norm layers do not.
        self.bn = build_norm_layer(norm_cfg, out_channels, act=act)
        self.act = SiLU() if act and not isinstance(self.bn, BatchNormAct2d) else None
        self.swish = act
        self.inference_kernel = None
        if (self.conv.kernel_kind == 'dense' and kernel_size in CONV_BN_SILU_KERNEL_SIZES
                and on_moving_stats_kernel(self.bn, silu=True)):
            self.inference_kernel = ConvBNSiLUInference(stride, self.conv.kernel_padding, self.bn.eps)
        elif self.conv.kernel_kind == 'pointwise' and on_moving_stats_kernel(self.bn, silu=act):
            self.inference_kernel = PointwiseBNInference(in_channels, out_channels, act, self.bn.eps)

    def _inference_kernel_applies(self, x) -> bool:
        # Compile-time constants under jit (static shapes), checked at every call (set_kernels or AMP may change them).
        return (not self.training and self.inference_kernel is not None and self.inference_kernel.use_kernel
                and self.conv.use_kernel and on_moving_stats_kernel(self.bn, silu=self.swish)
                and (self.conv.kernel_kind != 'pointwise' or small_maps(x)))

    def construct(self, x):
        if self._inference_kernel_applies(x):
            bn = self.bn
            return self.inference_kernel(x, self.conv.weight, bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
        x = self.bn(self.conv(x))
        if self.act is not None:
            x = self.act(x)
        return x
