"""Periodic and best checkpoints, and the ``last_checkpoint`` pointer."""
from __future__ import annotations

import math
import os
from typing import Dict, Optional

import numpy as np

from effnet_mm.registry import HOOKS

from ..checkpoints import save_training_checkpoint
from .hook import Hook


@HOOKS.register_module()
class CheckpointHook(Hook):
    """Saves ``epoch_N.ckpt`` (or, with ``by_epoch=False``, ``iter_N.ckpt``) training checkpoints, the
    ``last_checkpoint`` pointer, and the best checkpoint ``best_<key>_{epoch,iter}_N.ckpt``.

    Order of a save: the new best file first, then the periodic checkpoint (whose metadata names that best file),
    then ``last_checkpoint``, and only then the previous best file and periodic files beyond ``max_keep_ckpts`` are
    deleted — so a kill at any point leaves a resumable folder.  Every file is written atomically; every name
    stored (pointer, metadata) is relative to the folder; only files named by this hook are ever deleted.
    Iteration checkpoints of a run are written after the validation that iteration triggered, if any.

    Example config::

        default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                                             save_best='accuracy/top1', rule='greater'))
        # every 500 iterations (resumable mid-epoch):
        default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500))

    Args:
        interval: epochs (``by_epoch=True``) or iterations between checkpoints.
        by_epoch: count ``interval`` in epochs or iterations (iteration-based training needs False).
        max_keep_ckpts: keep only this many latest periodic files (``-1``: all).
        save_best: metric key whose best value keeps a best file (``None``: off, ``'auto'``: the first metric).
        rule: ``'greater'`` or ``'less'`` is better.
        save_last: also save at the end of training when it is not a multiple of ``interval``.
        out_dir: folder of the files (default: the work dir); resuming reads ``last_checkpoint`` there.
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 interval: int = 1,
                 by_epoch: bool = True,
                 max_keep_ckpts: int = -1,
                 save_best: Optional[str] = None,
                 rule: str = 'greater',
                 save_last: bool = True,
                 out_dir: Optional[str] = None) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'default_hooks.checkpoint.interval must be an int >= 1, got {interval!r}')
        if max_keep_ckpts == 0 or max_keep_ckpts < -1:
            raise ValueError(f'default_hooks.checkpoint.max_keep_ckpts must be -1 or positive, got {max_keep_ckpts}')
        if rule not in ('greater', 'less'):
            raise ValueError(f'default_hooks.checkpoint.rule must be "greater" or "less", got {rule!r}')
        self.interval = interval
        self.by_epoch = bool(by_epoch)
        self.max_keep_ckpts = max_keep_ckpts
        self.save_best = save_best
        self.rule = rule
        self.save_last = save_last
        self.out_dir = out_dir
        self.best_score: Optional[float] = None
        self.best_key: Optional[str] = None
        self.best_name: Optional[str] = None
        self._pending_best: Optional[float] = None

    def before_run(self, runner) -> None:
        if self.by_epoch and not runner.by_epoch:
            raise ValueError('default_hooks.checkpoint.by_epoch=True in an iteration-based run '
                             '(train_cfg.by_epoch=False): set default_hooks.checkpoint.by_epoch=False')
        self.folder = runner.checkpoint_folder
        if runner.rank == 0:
            for path in self.folder.clean_partials():
                runner.logger.info(f'Removed {path}, left by an interrupted save')

    # ------------------------------------------------------------------ best score
    def _is_better(self, score: float) -> bool:
        if self.best_score is None:
            return True
        return score > self.best_score if self.rule == 'greater' else score < self.best_score

    def after_val_epoch(self, runner, metrics: Dict[str, float]) -> None:
        if runner.eval_mode != 'val' or not self.save_best:
            return
        key = next(iter(metrics)) if self.save_best == 'auto' else self.save_best
        if key not in metrics:
            raise KeyError(f'default_hooks.checkpoint.save_best={self.save_best!r} is not a metric key '
                           f'(metrics: {sorted(metrics)})')
        score = float(metrics[key])
        if not math.isfinite(score):
            runner.logger.warning(f'{key} is {score}: not a best checkpoint')
            return
        self.best_key = key
        if self._is_better(score):
            self._pending_best = score

    # ------------------------------------------------------------------ saving
    def after_epoch(self, runner) -> None:
        due = self.by_epoch and (runner.epoch % self.interval == 0 or (runner.epoch == runner.max_epochs
                                                                       and self.save_last))
        self._save(runner, f'epoch_{runner.epoch}.ckpt' if due else None)

    def after_iter(self, runner) -> None:
        if self.by_epoch:
            return
        due = runner.iter % self.interval == 0 or (runner.iter == runner.max_iters and self.save_last)
        self._save(runner, f'iter_{runner.iter}.ckpt' if due else None)

    def _save(self, runner, periodic: Optional[str]) -> None:
        old_best = None
        if self._pending_best is not None:
            unit, number = ('epoch', runner.epoch) if runner.by_epoch else ('iter', runner.iter)
            name = f'best_{self.best_key.replace("/", "_")}_{unit}_{number}.ckpt'
            old_best, self.best_score, self.best_name = self.best_name, self._pending_best, name
            self._pending_best = None
            save_training_checkpoint(runner, self.folder.path(name))
            if runner.rank == 0:
                runner.logger.info(f'The best checkpoint with {self.best_score:.4f} {self.best_key} at {unit} '
                                   f'{number} is saved to {name}.')
        if periodic is not None:
            save_training_checkpoint(runner, self.folder.path(periodic))
            if runner.rank == 0:
                self.folder.write_pointer(periodic)
        if runner.rank == 0:
            if old_best and old_best != self.best_name:
                self.folder.remove(old_best)
            if periodic is not None:
                self._remove_old(periodic)

    def _remove_old(self, newest: str) -> None:
        if self.max_keep_ckpts < 0:
            return
        kind = newest.split('_', 1)[0]
        same_kind = [p for p in self.folder.periodic_checkpoints() if os.path.basename(p).startswith(kind + '_')]
        for path in same_kind[self.max_keep_ckpts:]:
            self.folder.remove(os.path.basename(path))

    # ------------------------------------------------------------------ checkpoint metadata
    def before_save_checkpoint(self, runner, state: Dict[str, np.ndarray], meta: Dict[str, str]) -> None:
        # Saved so a resumed run keeps comparing against the true best (names relative to the folder).
        meta['best_score'] = '' if self.best_score is None else repr(self.best_score)
        meta['best_path'] = self.best_name or ''
        meta['best_key'] = self.best_key or ''

    def after_load_checkpoint(self, runner, state: Dict[str, object], meta: Dict[str, str], resume: bool) -> None:
        if not resume or not meta.get('best_score'):
            return
        self.best_score = float(meta['best_score'])
        # Only a plain file name of this folder is ever deleted later (older checkpoints stored absolute paths).
        self.best_name = (meta.get('best_path') or '').replace('\\', '/').rsplit('/', 1)[-1] or None
        self.best_key = meta.get('best_key') or self.save_best
