"""Library side of ``tools/train.py`` and ``tools/test.py``: their flags merged into the config."""
from __future__ import annotations

import os
from typing import Optional

from mmengine.config import Config

from effnet_mm.runtime.config import load_config, resolve_work_dir  # noqa: F401  (deprecated import location)


def apply_train_args(cfg: Config, *, work_dir: Optional[str] = None, resume: Optional[str] = None,
                     amp: bool = False, auto_scale_lr: bool = False, no_validate: bool = False,
                     launcher: str = 'none') -> Config:
    """Merge the ``tools/train.py`` flags into ``cfg`` (in place) and return it.

    Args:
        resume: ``None`` (flag absent), ``'auto'`` (``--resume`` without value: latest in the work dir) or a path.
        amp: switch ``optim_wrapper`` to ``AmpOptimWrapper`` with dynamic loss scale (level from the config, else O2).
        auto_scale_lr: set ``auto_scale_lr.enable=True``.
        no_validate: drop validation during training.
    """
    cfg.work_dir = resolve_work_dir(cfg, work_dir)
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        cfg.resume = True
        cfg.load_from = resume
    if amp:
        optim = cfg.get('optim_wrapper')
        if not isinstance(optim, dict):
            raise KeyError(f'{cfg.filename}: --amp needs an optim_wrapper dict in the config')
        if optim.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
            optim.type = 'AmpOptimWrapper'
            optim.setdefault('loss_scale', 'dynamic')
    if auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError(f'{cfg.filename}: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
        hooks = cfg.get('default_hooks') or {}
        if isinstance(hooks.get('checkpoint'), dict):
            hooks['checkpoint']['save_best'] = None
    cfg.launcher = launcher
    return cfg


def apply_test_args(cfg: Config, checkpoint: str, *, work_dir: Optional[str] = None,
                    launcher: str = 'none') -> Config:
    """Merge the ``tools/test.py`` arguments into ``cfg`` (in place) and return it."""
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    cfg.work_dir = resolve_work_dir(cfg, work_dir)
    cfg.load_from = checkpoint
    cfg.resume = False
    cfg.launcher = launcher
    return cfg
