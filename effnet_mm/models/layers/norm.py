"""Normalisation layers from an mmpretrain-style ``norm_cfg``."""
from __future__ import annotations

from typing import Mapping, Optional

from mindspore import nn

from effnet_mm.ops import BatchNormAct2d
from effnet_mm.variants import NORM_CFG

from .sync_bn import SyncBatchNorm2d, build_sync_batch_norm

#: ``norm_cfg['type']`` values :func:`build_norm_layer` understands.
NORM_TYPES = ('BN', 'SyncBN')
_NORM_KEYS = {'type', 'eps', 'momentum', 'group_size'}
#: Cell types :func:`build_norm_layer` returns (``nn.SyncBatchNorm``: SyncBN on Ascend).
NORM_LAYER_TYPES = (nn.BatchNorm2d, nn.SyncBatchNorm, SyncBatchNorm2d)


def build_norm_layer(norm_cfg: Optional[Mapping], num_features: int, act: bool = False) -> nn.Cell:
    """A 2-d normalisation layer from ``norm_cfg`` (None: the TF network's ``BN``, eps 1e-3, momentum 0.01).

    ``BN`` is :class:`effnet_mm.ops.BatchNormAct2d`: an ``nn.BatchNorm2d`` that also applies SiLU when ``act`` is
    True and runs on CPU kernels when they are available.  ``SyncBN`` ignores ``act``: the caller applies the
    activation after it (see ``ConvBNAct``).

    ``momentum`` follows mmpretrain/PyTorch: the weight of the new batch statistic in the moving average (TF's
    decay 0.99 is ``momentum=0.01``).  Every layer names its parameters like ``nn.BatchNorm2d``
    (``gamma``, ``beta``, ``moving_mean``, ``moving_variance``), so checkpoints do not depend on the type.

    ``type='SyncBN'`` normalises with the moments of the global batch of all data-parallel ranks (or of groups of
    ``group_size`` consecutive ranks, TF's ``num_shards_per_group``), see
    :func:`~effnet_mm.models.layers.sync_bn.build_sync_batch_norm`; the model must be built after the process group
    started (the runner does so).  In one process it is BN.

    Example config::

        backbone = dict(type='EfficientNet', arch='b0', norm_cfg=dict(type='BN', eps=1e-5, momentum=0.1))
        backbone = dict(type='EfficientNet', arch='b0', norm_cfg=dict(type='SyncBN', eps=1e-3, momentum=0.01))

    Raises:
        ValueError: an unknown type or key, or a value out of range (the message names it).
    """
    cfg = dict(NORM_CFG if norm_cfg is None else norm_cfg)
    unknown = sorted(set(cfg) - _NORM_KEYS)
    if unknown:
        raise ValueError(f'norm_cfg: unknown keys {unknown} (supported: {sorted(_NORM_KEYS)})')
    norm_type = cfg.get('type', 'BN')
    if norm_type not in NORM_TYPES:
        raise ValueError(f'norm_cfg.type must be one of {NORM_TYPES}, got {norm_type!r}')
    eps = float(cfg.get('eps', NORM_CFG['eps']))
    momentum = float(cfg.get('momentum', NORM_CFG['momentum']))
    if eps <= 0:
        raise ValueError(f'norm_cfg.eps must be positive, got {eps}')
    if not 0.0 < momentum < 1.0:
        raise ValueError(f'norm_cfg.momentum (weight of the new batch statistic) must be in (0, 1), got {momentum}')
    if norm_type == 'SyncBN':
        return build_sync_batch_norm(num_features, eps, momentum, cfg.get('group_size'))
    if 'group_size' in cfg:
        raise ValueError(f"norm_cfg.group_size is a key of type='SyncBN', not of {norm_type!r}")
    # MindSpore's momentum is the fraction of the old moving statistic that is kept.
    return BatchNormAct2d(num_features, eps=eps, momentum=1.0 - momentum, act=act)


def is_norm_layer(cell: nn.Cell) -> bool:
    """True for the normalisation layers :func:`build_norm_layer` makes."""
    return isinstance(cell, NORM_LAYER_TYPES)
