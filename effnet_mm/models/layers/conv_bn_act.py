from __future__ import annotations

import warnings
from typing import Mapping, Optional

from mindspore import nn, ops

from effnet_mm.ops import FusedBatchNormAct, SiLU
from effnet_mm.registry import MODELS
from effnet_mm.variants import NORM_CFG

from .conv import Conv2dSame
from .norm import build_norm_layer


@MODELS.register_module()
class ConvBNAct(nn.Cell):
    """``Conv2dSame`` → normalisation (TF's BN: eps 1e-3, decay 0.99) → optional swish.

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
        self.bn = build_norm_layer(norm_cfg, out_channels)
        self.act = SiLU() if act else None  # fused swish kernel on CPU (falls back to nn.SiLU)
        # BN (+ swish) on one-pass CPU kernels using the BN's own parameters; adds no parameters.
        self.bn_act = FusedBatchNormAct(self.bn.eps, silu=act)

    def construct(self, x):
        x = self.conv(x)
        bn = self.bn
        # BN (+ swish) on one-pass CPU kernels; the conditions are compile-time constants.  AMP O2 wraps ``bn`` in a
        # cast cell (no longer a BatchNorm2d): then MindSpore's BN runs.
        if self.bn_act.fast_conv and isinstance(bn, nn.BatchNorm2d):
            if bn.use_batch_statistics is False or (bn.use_batch_statistics is None and not bn.training):
                return self.bn_act(x, bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
            x, mean, variance = self.bn_act.batch_stats(x, bn.gamma, bn.beta)
            # nn.BatchNorm2d's update; the batch weight (1 - bn_momentum) is read from its training primitive when
            # possible (PyNative), so code that swaps ``bn.bn_train`` (e.g. BN calibration) keeps working.
            w = getattr(bn.bn_train, 'momentum', bn.momentum)
            x = ops.depend(x, ops.assign(bn.moving_mean, bn.moving_mean * (1.0 - w) + mean * w))
            return ops.depend(x, ops.assign(bn.moving_variance, bn.moving_variance * (1.0 - w) + variance * w))
        x = bn(x)
        if self.act is not None:
            x = self.act(x)
        return x
