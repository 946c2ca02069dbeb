"""``optim_wrapper`` (+ ``auto_scale_lr``) config → optimizer, clipping, mixed precision and accumulation settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from mindspore import amp, nn

from .amp import AMP_LEVELS
from .optimizers import build_optimizer

WRAPPER_TYPES = ('OptimWrapper', 'AmpOptimWrapper')
_WRAPPER_KEYS = {'type', 'optimizer', 'paramwise_cfg', 'clip_grad', 'loss_scale', 'level', 'dtype',
                 'accumulative_counts'}
_LOSS_SCALE_KEYS = {'init_scale', 'growth_factor', 'growth_interval', 'min_scale', 'max_consecutive_skips'}
#: Defaults of a dynamic loss scale: mmengine's GradScaler values, plus when to give up (see :class:`AmpGuard`).
DYNAMIC_LOSS_SCALE = dict(init_scale=2.0**16, growth_factor=2, growth_interval=2000, min_scale=1.0,
                          max_consecutive_skips=50)


@dataclass
class AmpGuard:
    """When skipped fp16 updates stop being normal: the run is stopped as diverged.

    Attributes:
        min_scale: a dynamic loss scale below this means every recent step overflowed.
        max_consecutive_skips: this many overflow-skipped updates in a row.
    """

    min_scale: float = DYNAMIC_LOSS_SCALE['min_scale']
    max_consecutive_skips: int = DYNAMIC_LOSS_SCALE['max_consecutive_skips']


@dataclass
class OptimWrapper:
    """What the training step needs from ``optim_wrapper``.

    Attributes:
        optimizer: the MindSpore optimizer over the model's trainable parameters.
        base_lr: LR before scheduling, after ``auto_scale_lr``.
        max_norm: global gradient-norm clip (None: no clipping).
        amp_level: ``'O1'``/``'O2'`` for fp16 mixed precision, None for fp32.
        loss_scaler: the AMP loss scaler (None in fp32).
        amp_guard: when overflow skips mean divergence (None in fp32).
        accumulative_counts: micro-batches per optimizer update (mmengine's name).
    """

    optimizer: nn.Optimizer
    base_lr: float
    max_norm: Optional[float] = None
    amp_level: Optional[str] = None
    loss_scaler: Optional[amp.LossScaler] = None
    amp_guard: Optional[AmpGuard] = None
    accumulative_counts: int = 1


def _loss_scaler(loss_scale: object):
    """The loss scaler and guard of an ``AmpOptimWrapper``'s ``loss_scale`` value.

    ``'dynamic'`` gives a dynamic scaler with :data:`DYNAMIC_LOSS_SCALE`; a dict overrides any of its keys; a positive
    number gives a static scale.
    """
    if loss_scale == 'dynamic' or loss_scale is None:
        loss_scale = {}
    if isinstance(loss_scale, Mapping):
        unknown = sorted(set(loss_scale) - _LOSS_SCALE_KEYS)
        if unknown:
            raise KeyError(f'optim_wrapper.loss_scale: unknown keys {unknown} (supported: {sorted(_LOSS_SCALE_KEYS)})')
        cfg = dict(DYNAMIC_LOSS_SCALE, **loss_scale)
        if int(cfg['max_consecutive_skips']) < 1 or float(cfg['min_scale']) <= 0:
            raise ValueError(f'optim_wrapper.loss_scale: max_consecutive_skips must be >= 1 and min_scale > 0, got '
                             f'{cfg["max_consecutive_skips"]!r} and {cfg["min_scale"]!r}')
        scaler = amp.DynamicLossScaler(float(cfg['init_scale']), int(cfg['growth_factor']),
                                       int(cfg['growth_interval']))
        return scaler, AmpGuard(float(cfg['min_scale']), int(cfg['max_consecutive_skips']))
    if isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool) and loss_scale > 0:
        return amp.StaticLossScaler(float(loss_scale)), AmpGuard(0.0, DYNAMIC_LOSS_SCALE['max_consecutive_skips'])
    raise ValueError(f'optim_wrapper.loss_scale must be "dynamic", a dict or a positive number, got {loss_scale!r}')


def build_optim_wrapper(cfg: Mapping, model: nn.Cell, *, auto_scale_lr: Optional[Mapping] = None,
                        real_batch_size: Optional[int] = None, logger=None) -> OptimWrapper:
    """Build the optimizer and step settings of an mmengine-style ``optim_wrapper`` config.

    Example config::

        optim_wrapper = dict(type='AmpOptimWrapper', level='O2', loss_scale='dynamic', accumulative_counts=4,
                             optimizer=dict(type='RMSProp', lr=0.016, alpha=0.9, momentum=0.9, eps=1e-3,
                                            weight_decay=1e-5),
                             paramwise_cfg=dict(norm_decay_mult=0.0), clip_grad=dict(max_norm=10.0))

    Args:
        cfg: the ``optim_wrapper`` dict.
        model: the network whose trainable parameters are optimised.
        auto_scale_lr: ``dict(enable=..., base_batch_size=...)``: scale the LR by ``real_batch_size / base``.
        real_batch_size: global batch size per update (batch x world size x accumulative counts).
        logger: receives the auto-scale line.
    """
    if not isinstance(cfg, Mapping) or 'optimizer' not in cfg:
        raise KeyError(f'optim_wrapper must be a dict with an "optimizer" entry, got {cfg!r}')
    unknown = sorted(set(cfg) - _WRAPPER_KEYS)
    if unknown:
        raise KeyError(f'optim_wrapper: unknown keys {unknown} (supported: {sorted(_WRAPPER_KEYS)})')
    wrapper_type = cfg.get('type', 'OptimWrapper')
    if wrapper_type not in WRAPPER_TYPES:
        raise ValueError(f'optim_wrapper.type must be one of {WRAPPER_TYPES}, got {wrapper_type!r}')
    counts = cfg.get('accumulative_counts', 1)
    if not isinstance(counts, int) or isinstance(counts, bool) or counts < 1:
        raise ValueError(f'optim_wrapper.accumulative_counts must be an int >= 1, got {counts!r}')

    optimizer = build_optimizer(cfg['optimizer'], model.trainable_params(), cfg.get('paramwise_cfg'))
    base_lr = float(cfg['optimizer']['lr'])
    auto_scale_lr = auto_scale_lr or {}
    if auto_scale_lr.get('enable', False):
        base_batch = auto_scale_lr.get('base_batch_size')
        if not base_batch or base_batch <= 0:
            raise ValueError(f'auto_scale_lr.base_batch_size must be positive, got {base_batch!r}')
        if not real_batch_size:
            raise ValueError('auto_scale_lr: the training batch size is unknown')
        scaled = base_lr * real_batch_size / base_batch
        if logger is not None:
            logger.info(f'auto_scale_lr: lr {base_lr} x {real_batch_size}/{base_batch} = {scaled}')
        base_lr = scaled

    max_norm = None
    clip = cfg.get('clip_grad')
    if clip:
        if float(clip.get('norm_type', 2)) != 2:
            raise ValueError(f'optim_wrapper.clip_grad.norm_type must be 2, got {clip.get("norm_type")}')
        if not clip.get('max_norm') or clip['max_norm'] <= 0:
            raise ValueError(f'optim_wrapper.clip_grad.max_norm must be positive, got {clip.get("max_norm")!r}')
        max_norm = float(clip['max_norm'])

    wrapper = OptimWrapper(optimizer=optimizer, base_lr=base_lr, max_norm=max_norm, accumulative_counts=counts)
    if wrapper_type == 'AmpOptimWrapper':
        level = cfg.get('level', 'O2')
        if level not in AMP_LEVELS:
            raise ValueError(f'optim_wrapper.level must be one of {AMP_LEVELS}, got {level!r}')
        if cfg.get('dtype', 'float16') != 'float16':
            raise ValueError(f'optim_wrapper.dtype must be "float16" (bfloat16 convs are unsupported on CPU), '
                             f'got {cfg.get("dtype")!r}')
        wrapper.amp_level = level
        wrapper.loss_scaler, wrapper.amp_guard = _loss_scaler(cfg.get('loss_scale', 'dynamic'))
    return wrapper
