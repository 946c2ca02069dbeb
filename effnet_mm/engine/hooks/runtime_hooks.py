"""Small hooks every run has: iteration timing, the LR schedule, the loader's epoch."""
from __future__ import annotations

import time
from typing import Dict

from effnet_mm.registry import HOOKS

from .hook import Hook


@HOOKS.register_module()
class IterTimerHook(Hook):
    """Measures ``data_time`` (waiting for the batch) and ``time`` (whole iteration) of every training iteration.

    Example config::

        default_hooks = dict(timer=dict(type='IterTimerHook'))
    """

    priority = 'NORMAL'

    def before_train_epoch(self, runner) -> None:
        self._last = time.perf_counter()

    def before_train_iter(self, runner, batch_idx: int) -> None:
        runner.message['data_time'] = time.perf_counter() - self._last

    def after_train_iter(self, runner, batch_idx: int, outputs: Dict[str, float]) -> None:
        now = time.perf_counter()
        runner.message['time'] = now - self._last
        self._last = now


@HOOKS.register_module()
class ParamSchedulerHook(Hook):
    """Sets ``runner.lr`` to the scheduled learning rate of the coming optimizer update.

    Without this hook the LR stays at the base LR (mmengine behaves the same).  With gradient accumulation the
    schedule counts optimizer updates, not micro-batches.

    Example config::

        default_hooks = dict(param_scheduler=dict(type='ParamSchedulerHook'))
    """

    priority = 'LOW'

    def before_train_iter(self, runner, batch_idx: int) -> None:
        runner.lr = runner.lr_schedule.lr_at(runner.update_index)


@HOOKS.register_module()
class DistSamplerSeedHook(Hook):
    """Tells the training loader the epoch, so its order is a function of ``(seed, epoch)`` (on every rank).

    Example config::

        default_hooks = dict(sampler_seed=dict(type='DistSamplerSeedHook'))
    """

    def before_train_epoch(self, runner) -> None:
        runner.train_loader.set_epoch(runner.epoch)
