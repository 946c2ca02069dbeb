"""Training and evaluation logging (text log and vis backends)."""
from __future__ import annotations

import datetime
from typing import Dict, List

import numpy as np

from effnet_mm.evaluation import format_metric_value
from effnet_mm.registry import HOOKS

from .hook import Hook


@HOOKS.register_module()
class LoggerHook(Hook):
    """Logs training scalars every ``interval`` iterations and the evaluation metrics (text log + vis backends).

    Epoch-based runs log ``Epoch(train) [e][i/n]`` lines (the last iteration of an epoch is always logged) and
    validation scalars at step = epoch; iteration-based runs log ``Iter(train) [i/max_iters]`` lines and
    validation scalars at step = iteration, like mmengine.

    Example config::

        default_hooks = dict(logger=dict(type='LoggerHook', interval=10))

    Args:
        interval: iterations between training log lines.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, interval: int = 10) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'default_hooks.logger.interval must be an int >= 1, got {interval!r}')
        self.interval = interval

    def before_run(self, runner) -> None:
        self._times: List[float] = []

    def after_train_iter(self, runner, batch_idx: int, outputs: Dict[str, float]) -> None:
        msg = runner.message
        self._times.append(msg.get('time', 0.0))
        epoch_len = len(runner.train_loader)
        if runner.by_epoch:
            due = (batch_idx + 1) % self.interval == 0 or batch_idx + 1 == epoch_len
        else:
            due = runner.iter % self.interval == 0 or runner.iter == runner.max_iters
        if not due:
            return
        window = self._times[-self.interval:]
        eta = (float(np.mean(window)) if window else 0.0) * (runner.max_iters - runner.iter)
        scalars = {'lr': runner.lr, 'data_time': msg.get('data_time', 0.0), 'time': msg.get('time', 0.0),
                   'eta': eta, 'epoch': runner.epoch + 1, 'iter': runner.iter}
        scalars.update(outputs)
        runner.log_scalars(scalars, step=runner.iter)
        extra = ''.join(f'  {k}: {v:.4f}' for k, v in outputs.items() if k != 'loss')
        if runner.by_epoch:
            width = len(str(epoch_len))
            where = f'Epoch(train) [{runner.epoch + 1}][{batch_idx + 1:>{width}}/{epoch_len}]'
        else:
            where = f'Iter(train) [{runner.iter:>{len(str(runner.max_iters))}}/{runner.max_iters}]'
        runner.logger.info(
            f'{where}  lr: {runner.lr:.4e}  eta: {datetime.timedelta(seconds=int(eta))}  '
            f'time: {msg.get("time", 0.0):.4f}  data_time: {msg.get("data_time", 0.0):.4f}  '
            f'loss: {outputs["loss"]:.4f}{extra}')

    def after_val_epoch(self, runner, metrics: Dict[str, object]) -> None:
        # Per-class lists and confusion matrices are not scalars: the scalar backends get only the scalars.
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        text = '  '.join(f'{k}: {format_metric_value(v)}' for k, v in metrics.items())
        mode = runner.eval_mode
        batches = f'[{runner.eval_batches}/{runner.eval_batches}]'
        if runner.by_epoch:
            runner.logger.info(f'Epoch({mode}) [{runner.epoch}]{batches}  {text}')
        else:
            runner.logger.info(f'Iter({mode}) [{runner.iter}]{batches}  {text}')
        if mode == 'val':
            step = runner.epoch if runner.by_epoch else runner.iter
            runner.log_scalars(dict(scalars, epoch=runner.epoch, iter=runner.iter), step=step)
