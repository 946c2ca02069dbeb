"""Training hooks (mmengine's hook points, on the MindSpore runner).

The runner calls, in order of ``priority`` (lower first): ``before_run``; per epoch ``before_train_epoch``,
``before_train_iter`` / ``after_train_iter`` per batch, ``after_train_epoch``, then ``before_val_epoch`` /
``after_val_epoch`` when it validates, and ``after_epoch`` once the epoch (training and validation) is complete;
``after_run``.  ``before_save_checkpoint(runner, state)`` / ``after_load_checkpoint(runner, state, resume)`` let a hook
add or read entries of a training checkpoint.
"""
from __future__ import annotations

import datetime
import os
import time
from typing import Dict, List, Optional

import mindspore as ms
import numpy as np

from effnet_mm.evaluation import format_metric_value
from effnet_mm.registry import HOOKS
from effnet_mm.utils.fileio import write_text

from .ema import EMAWeights, ema_decay

PRIORITIES = {'HIGHEST': 0, 'VERY_HIGH': 10, 'HIGH': 30, 'ABOVE_NORMAL': 40, 'NORMAL': 50, 'BELOW_NORMAL': 60,
              'LOW': 70, 'VERY_LOW': 90, 'LOWEST': 100}


class Hook:
    """Base hook: every method is a no-op, subclasses override the points they need."""

    priority = 'NORMAL'

    def before_run(self, runner) -> None:
        """Once, before the first epoch (after the model and loaders exist)."""

    def before_train_epoch(self, runner) -> None:
        """At the start of every training epoch."""

    def before_train_iter(self, runner, batch_idx: int) -> None:
        """Before the step of batch ``batch_idx`` of the epoch."""

    def after_train_iter(self, runner, batch_idx: int, outputs: Dict[str, float]) -> None:
        """After the step; ``outputs`` holds at least ``loss``."""

    def after_train_epoch(self, runner) -> None:
        """After the last training batch of the epoch, before validation."""

    def before_val_epoch(self, runner) -> None:
        """Before a validation or test pass."""

    def after_val_epoch(self, runner, metrics: Dict[str, float]) -> None:
        """After a validation or test pass, with its metrics."""

    def after_epoch(self, runner) -> None:
        """After the training epoch and its validation (if any)."""

    def after_run(self, runner) -> None:
        """Once, after training."""

    def before_save_checkpoint(self, runner, state: Dict[str, np.ndarray]) -> None:
        """Add entries to a training checkpoint being written (``state`` maps names to arrays)."""

    def after_load_checkpoint(self, runner, state: Dict[str, object], resume: bool) -> None:
        """Read entries of a checkpoint just loaded (``resume``: a training resume, not ``load_from``)."""


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
    """Writes the scheduled learning rate of the coming iteration into the optimizer.

    Example config::

        default_hooks = dict(param_scheduler=dict(type='ParamSchedulerHook'))
    """

    priority = 'LOW'

    def before_train_iter(self, runner, batch_idx: int) -> None:
        runner.set_lr(runner.lr_schedule.lr_at(runner.iter))


@HOOKS.register_module()
class DistSamplerSeedHook(Hook):
    """Tells the training loader the epoch, so its order is a function of ``(seed, epoch)`` (on every rank).

    Example config::

        default_hooks = dict(sampler_seed=dict(type='DistSamplerSeedHook'))
    """

    def before_train_epoch(self, runner) -> None:
        runner.train_loader.set_epoch(runner.epoch)


@HOOKS.register_module()
class LoggerHook(Hook):
    """Logs training scalars every ``interval`` iterations and the validation metrics (text log + vis backends).

    Example config::

        default_hooks = dict(logger=dict(type='LoggerHook', interval=10))

    Args:
        interval: iterations between training log lines (the last iteration of an epoch is always logged).
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, interval: int = 10) -> None:
        if interval < 1:
            raise ValueError(f'default_hooks.logger.interval must be >= 1, got {interval}')
        self.interval = interval

    def before_run(self, runner) -> None:
        self._times: List[float] = []

    def after_train_iter(self, runner, batch_idx: int, outputs: Dict[str, float]) -> None:
        msg = runner.message
        self._times.append(msg.get('time', 0.0))
        epoch_len = len(runner.train_loader)
        if (batch_idx + 1) % self.interval and batch_idx + 1 != epoch_len:
            return
        window = self._times[-self.interval:]
        mean_time = float(np.mean(window)) if window else 0.0
        eta = mean_time * (runner.max_iters - runner.iter)
        scalars = {'lr': msg['lr'], 'data_time': msg.get('data_time', 0.0), 'time': msg.get('time', 0.0),
                   'eta': eta, 'epoch': runner.epoch + 1, 'iter': runner.iter}
        scalars.update(outputs)
        runner.log_scalars(scalars, step=runner.iter)
        extra = ''.join(f'  {k}: {v:.4f}' for k, v in outputs.items() if k != 'loss')
        width = len(str(epoch_len))
        runner.logger.info(
            f'Epoch(train) [{runner.epoch + 1}][{batch_idx + 1:>{width}}/{epoch_len}]  lr: {msg["lr"]:.4e}  '
            f'eta: {datetime.timedelta(seconds=int(eta))}  time: {msg.get("time", 0.0):.4f}  '
            f'data_time: {msg.get("data_time", 0.0):.4f}  loss: {outputs["loss"]:.4f}{extra}')

    def after_val_epoch(self, runner, metrics: Dict[str, object]) -> None:
        # Per-class lists and confusion matrices are not scalars: the scalar backends get only the scalars.
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        text = '  '.join(f'{k}: {format_metric_value(v)}' for k, v in metrics.items())
        mode = runner.eval_mode
        runner.logger.info(f'Epoch({mode}) [{runner.epoch}][{runner.eval_batches}/{runner.eval_batches}]  {text}')
        if mode == 'val':
            runner.log_scalars(dict(scalars, epoch=runner.epoch), step=runner.epoch)



@HOOKS.register_module()
class CheckpointHook(Hook):
    """Saves ``epoch_N.ckpt`` training checkpoints, the ``last_checkpoint`` pointer and the best checkpoint.

    Checkpoints are written after the epoch's validation, so they carry the up-to-date best score; old epoch files
    beyond ``max_keep_ckpts`` are deleted.  Files are written atomically (a crash keeps the previous good file).

    Example config::

        default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                                             save_best='accuracy/top1', rule='greater'))

    Args:
        interval: epochs between checkpoints (the last epoch is always saved).
        max_keep_ckpts: keep only this many latest ``epoch_N.ckpt`` files (``-1``: all).
        save_best: metric key whose best value keeps a ``best_<key>_epoch_N.ckpt`` (``None``: off, ``'auto'``: the
            first metric).
        rule: ``'greater'`` or ``'less'`` is better.
        save_last: also save the final epoch when it is not a multiple of ``interval``.
        out_dir: directory of the files (default: the work dir).
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 interval: int = 1,
                 max_keep_ckpts: int = -1,
                 save_best: Optional[str] = None,
                 rule: str = 'greater',
                 save_last: bool = True,
                 out_dir: Optional[str] = None,
                 by_epoch: bool = True) -> None:
        if interval < 1:
            raise ValueError(f'default_hooks.checkpoint.interval must be >= 1, got {interval}')
        if max_keep_ckpts == 0 or max_keep_ckpts < -1:
            raise ValueError(f'default_hooks.checkpoint.max_keep_ckpts must be -1 or positive, got {max_keep_ckpts}')
        if rule not in ('greater', 'less'):
            raise ValueError(f'default_hooks.checkpoint.rule must be "greater" or "less", got {rule!r}')
        if not by_epoch:
            raise ValueError('default_hooks.checkpoint.by_epoch=False is not supported: the runner is epoch-based')
        self.interval = interval
        self.max_keep_ckpts = max_keep_ckpts
        self.save_best = save_best
        self.rule = rule
        self.save_last = save_last
        self.out_dir = out_dir
        self.best_score: Optional[float] = None
        self.best_path: Optional[str] = None
        self._pending_best = False

    def before_run(self, runner) -> None:
        self.out_dir = self.out_dir or runner.work_dir

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
        if self._is_better(score):
            self.best_score = score
            self.best_key = key
            self._pending_best = True

    def after_epoch(self, runner) -> None:
        epoch = runner.epoch  # completed epochs
        is_last = epoch == runner.max_epochs
        pending_best, self._pending_best = self._pending_best, False
        if epoch % self.interval == 0 or (is_last and self.save_last):
            path = os.path.join(self.out_dir, f'epoch_{epoch}.ckpt')
            runner.save_training_checkpoint(path)
            if runner.rank == 0:
                write_text(os.path.join(self.out_dir, 'last_checkpoint'), os.path.abspath(path))
                self._remove_old(epoch)
        if pending_best:
            name = self.best_key.replace('/', '_')
            path = os.path.join(self.out_dir, f'best_{name}_epoch_{epoch}.ckpt')
            runner.save_training_checkpoint(path)
            if runner.rank == 0:
                if self.best_path and self.best_path != path and os.path.exists(self.best_path):
                    os.remove(self.best_path)
                runner.logger.info(f'The best checkpoint with {self.best_score:.4f} {self.best_key} at {epoch} '
                                   f'epoch is saved to {os.path.basename(path)}.')
            self.best_path = path

    def _remove_old(self, epoch: int) -> None:
        if self.max_keep_ckpts < 0:
            return
        for old in range(epoch - self.max_keep_ckpts * self.interval, 0, -1):
            path = os.path.join(self.out_dir, f'epoch_{old}.ckpt')
            if os.path.exists(path):
                os.remove(path)

    def before_save_checkpoint(self, runner, state: Dict[str, np.ndarray]) -> None:
        # Saved in the metadata so a resumed run keeps comparing against the true best.
        runner.checkpoint_meta['best_score'] = '' if self.best_score is None else repr(self.best_score)
        runner.checkpoint_meta['best_path'] = self.best_path or ''
        runner.checkpoint_meta['best_key'] = getattr(self, 'best_key', '') or ''

    def after_load_checkpoint(self, runner, state: Dict[str, object], resume: bool) -> None:
        if not resume:
            return
        meta = runner.loaded_meta
        if meta.get('best_score'):
            self.best_score = float(meta['best_score'])
            self.best_path = meta.get('best_path') or None
            self.best_key = meta.get('best_key') or self.save_best


@HOOKS.register_module()
class EMAHook(Hook):
    """Exponential moving average of all weights (BN statistics included), TF EfficientNet style.

    After every iteration ``ema = d * ema + (1 - d) * w`` with ``d = min(1 - momentum, (1 + n) / (10 + n))``
    (``n`` = previous updates; the warm-up term is TF's ``num_updates``).  Validation and the weights stored under
    the plain parameter names of a checkpoint are the averages; the raw training weights are stored as
    ``online.<name>`` so a resume continues exactly.

    Example config::

        custom_hooks = [dict(type='EMAHook', momentum=1e-4, warmup=True)]   # decay 0.9999

    Args:
        momentum: ``1 - decay`` (mmengine convention); TF's 0.9999 decay is ``momentum=1e-4``.
        warmup: use TF's ``(1 + n) / (10 + n)`` warm-up of the decay.
        begin_iter: start averaging at this global iteration (before it the average tracks the weights).
    """

    priority = 'NORMAL'
    ONLINE_PREFIX = 'online.'

    def __init__(self, momentum: float = 1e-4, warmup: bool = True, begin_iter: int = 0) -> None:
        if not 0.0 < momentum < 1.0:
            raise ValueError(f'EMAHook: momentum (1 - decay) must be in (0, 1), got {momentum}')
        self.decay = 1.0 - momentum
        self.warmup = warmup
        self.begin_iter = begin_iter
        self.num_updates = 0
        self.ema: Optional[EMAWeights] = None

    def before_run(self, runner) -> None:
        self.ema = EMAWeights(runner.model)
        ema = self.ema

        def update(decay):
            return ema(decay)

        self._update = ms.jit(update)

    def after_train_iter(self, runner, batch_idx: int, outputs: Dict[str, float]) -> None:
        if runner.iter <= self.begin_iter:
            self.ema.reset_to_model()
            return
        decay = ema_decay(self.decay, self.num_updates, self.warmup)
        self._update(ms.Tensor(decay, ms.float32))
        self.num_updates += 1

    def before_val_epoch(self, runner) -> None:
        # Only validation during training swaps (test() evaluates the loaded weights, which are the averages).
        if runner.eval_mode == 'val' and self.ema is not None:
            self.ema.swap()

    def after_val_epoch(self, runner, metrics: Dict[str, float]) -> None:
        if runner.eval_mode == 'val' and self.ema is not None:
            self.ema.swap()

    def before_save_checkpoint(self, runner, state: Dict[str, np.ndarray]) -> None:
        for name, value in self.ema.state().items():
            state[self.ONLINE_PREFIX + name] = state[name]
            state[name] = value
        runner.checkpoint_meta['ema_num_updates'] = str(self.num_updates)

    def after_load_checkpoint(self, runner, state: Dict[str, object], resume: bool) -> None:
        online = {k[len(self.ONLINE_PREFIX):]: v for k, v in state.items() if k.startswith(self.ONLINE_PREFIX)}
        if not resume or not online:
            # load_from (fine-tuning) or a checkpoint without EMA: start averaging from the loaded weights.
            self.ema.reset_to_model()
            return
        # The runner loaded the plain names (the averages) into the model: move them to the shadow and put the
        # online weights back into the model.
        self.ema.reset_to_model()
        runner.load_model_state(online)
        self.num_updates = int(runner.loaded_meta.get('ema_num_updates', 0))

