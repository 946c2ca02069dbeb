from __future__ import annotations

import warnings
from typing import Mapping, Optional

from mindspore import nn

from effnet_mm.ops import BatchNormAct2d, SiLU
from effnet_mm.ops.batchnorm import on_moving_stats_kernel
from effnet_mm.ops.conv import CONV_BN_SILU_KERNEL_SIZES, ConvBNSiLUInference
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
    stem) with BN + swish runs as one kernel (:class:`~effnet_mm.ops.conv.ConvBNSiLUInference`,
    ``inference_kernel``) on the same parameters.

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
        self.inference_kernel = None
        if (self.conv.kernel_kind == 'dense' and kernel_size in CONV_BN_SILU_KERNEL_SIZES
                and on_moving_stats_kernel(self.bn, silu=True)):
            self.inference_kernel = ConvBNSiLUInference(stride, self.conv.kernel_padding, self.bn.eps)

    def _inference_kernel_applies(self) -> bool:
        # Compile-time constants under jit, checked at every call (set_kernels or AMP may change them).
        return (not self.training and self.inference_kernel is not None and self.inference_kernel.use_kernel
                and self.conv.use_kernel and on_moving_stats_kernel(self.bn, silu=True))

    def construct(self, x):
        if self._inference_kernel_applies():
            bn = self.bn
            return self.inference_kernel(x, self.conv.weight, bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
        x = self.bn(self.conv(x))
        if self.act is not None:
            x = self.act(x)
        return x
