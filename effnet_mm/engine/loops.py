"""Training and evaluation loops (mmengine's ``EpochBasedTrainLoop`` / ``IterBasedTrainLoop`` / ``ValLoop``).

The training loop walks the loader epoch by epoch in both modes (the data order and augmentation of an epoch are a
function of ``(seed, epoch)``); ``train_cfg.by_epoch`` decides whether ``max_epochs``/``val_interval`` count epochs or
``max_iters``/``val_interval`` count iterations.  Hook points, in order: ``before_train_epoch``; per iteration
``before_train_iter``, ``after_train_iter``, validation when due (iteration-based), ``after_iter``; at the end of an
epoch ``after_train_epoch``, validation when due (epoch-based), ``after_epoch``.
"""
from __future__ import annotations

import itertools
import math
from typing import Dict, List, Optional

import numpy as np
from mmengine.utils import ProgressBar

from effnet_mm.runtime import dist

from .randomness import mix_rng

LOOP_TYPES = {'EpochBasedTrainLoop': True, 'IterBasedTrainLoop': False}


class TrainingDivergedError(FloatingPointError):
    """Training produced a non-finite loss or gradient (or fp16 overflows that do not stop): the run is stopped."""


class TrainLoop:
    """Runs training for ``max_epochs`` epochs or ``max_iters`` iterations; see the module docstring.

    Args:
        runner: the runner (model, step, hooks, state).
        loader: the training loader.
        by_epoch: epoch-based (True) or iteration-based (False).
        max_epochs / max_iters: the length of training in its unit.
        val_interval: validate every this many epochs (iterations when iteration-based); the end always validates.
        val_begin: first epoch (iteration) that validates.
    """

    def __init__(self, runner, loader, *, by_epoch: bool, max_epochs: Optional[int], max_iters: Optional[int],
                 val_interval: int, val_begin: int) -> None:
        self.runner = runner
        self.loader = loader
        self.by_epoch = by_epoch
        self.epoch_length = len(loader)
        self.counts = runner.optim_wrapper.accumulative_counts
        if by_epoch:
            self.max_epochs = int(max_epochs)
            self.max_iters = self.max_epochs * self.epoch_length
        else:
            self.max_iters = int(max_iters)
            self.max_epochs = math.ceil(self.max_iters / self.epoch_length)
        self.val_interval = val_interval
        self.val_begin = val_begin
        #: Optimizer updates per data epoch: the unit of the LR schedule.
        self.updates_per_epoch = math.ceil(self.epoch_length / self.counts)
        self.batch_augments = getattr(runner.model, 'batch_augments', None)
        self.num_classes = getattr(getattr(runner.model, 'head', None), 'num_classes', None)

    # ------------------------------------------------------------------ accumulation groups
    def _group(self, epoch: int, batch: int, iteration: int):
        """``(update index, micro-batches in this update, whether this micro-batch ends it)``.

        Epoch-based training groups the micro-batches of an epoch (the last group of an epoch may be shorter);
        iteration-based training groups global iterations (the last group of the run may be shorter).
        """
        k = self.counts
        if self.by_epoch:
            start = batch - batch % k
            size = min(k, self.epoch_length - start)
            return epoch * self.updates_per_epoch + batch // k, size, batch + 1 == start + size
        start = iteration - iteration % k
        size = min(k, self.max_iters - start)
        return iteration // k, size, iteration + 1 == start + size

    def _should_validate(self, progress: int, final: bool) -> bool:
        if not self.runner.can_validate:
            return False
        return final or (progress >= self.val_begin and progress % self.val_interval == 0)

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        runner = self.runner
        while not self._done():
            runner.call_hook('before_train_epoch')
            start = runner.batch_in_epoch
            for batch_idx, batch in enumerate(self._batches(start), start=start):
                self._run_iter(batch_idx, batch)
                if self._done() and not self.by_epoch:
                    break
            if not self.by_epoch and runner.batch_in_epoch < self.epoch_length:
                break  # an iteration-based run that ends inside a data epoch
            if getattr(self.loader, 'skipped', None):
                runner.logger.warning(self.loader.skipped_message())
            runner.epoch += 1
            runner.batch_in_epoch = 0
            runner.call_hook('after_train_epoch')
            if self.by_epoch:
                if self._should_validate(runner.epoch, runner.epoch == self.max_epochs):
                    runner.val()
                runner.call_hook('after_epoch')

    def _batches(self, start: int):
        """The current epoch's batches from ``start`` on (``iter_from`` of effnet_mm's loaders; any other loader
        following the Loaders contract is iterated from its beginning and the first ``start`` batches dropped)."""
        if hasattr(self.loader, 'iter_from'):
            return self.loader.iter_from(start)
        return itertools.islice(iter(self.loader), start, None)

    def _done(self) -> bool:
        if self.by_epoch:
            return self.runner.epoch >= self.max_epochs
        return self.runner.iter >= self.max_iters

    def _run_iter(self, batch_idx: int, batch: Dict[str, np.ndarray]) -> None:
        runner = self.runner
        update_index, size, apply_update = self._group(runner.epoch, batch_idx, runner.iter)
        runner.update_index = update_index
        runner.call_hook('before_train_iter', batch_idx)
        targets = np.asarray(batch['gt_label'], np.int32)
        drop_masks, dropout_mask = runner.step_masks.draw(runner.epoch, batch['sample_idx'])
        mix = None
        if self.batch_augments is not None:
            drawn = self.batch_augments(mix_rng(runner.seed, runner.epoch, runner.iter, runner.rank), targets,
                                        self.num_classes, batch['inputs'].shape[2:])
            mix, targets = (drawn.perm, drawn.mask), drawn.targets
        loss, finite = runner.train_step(batch['inputs'], targets, runner.lr, drop_masks, dropout_mask,
                                         1.0 / size, apply_update, mix)
        outputs = {'loss': loss}
        self._check_finite(loss, finite, apply_update, outputs)
        runner.iter += 1
        runner.batch_in_epoch = batch_idx + 1
        runner.updated = apply_update and finite
        runner.call_hook('after_train_iter', batch_idx, outputs)
        if not self.by_epoch and self._should_validate(runner.iter, runner.iter == self.max_iters):
            runner.val()
        runner.call_hook('after_iter')

    def _check_finite(self, loss: float, finite: bool, apply_update: bool, outputs: Dict[str, float]) -> None:
        """Stop a diverged run; count fp16 overflow skips (normal, unless they do not stop)."""
        runner = self.runner
        step = runner.train_step
        where = f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})'
        guard = runner.optim_wrapper.amp_guard
        if guard is None:
            if not (finite and math.isfinite(loss)):
                raise TrainingDivergedError(
                    f'{where}: the loss is {loss} and/or a gradient is not finite; training stopped (the '
                    f'checkpoints written so far are untouched). Lower the learning rate, or check the data.')
            return
        scale = step.loss_scale()
        outputs['loss_scale'] = scale
        if not apply_update:
            return
        if finite:
            runner.amp_consecutive_skips = 0
            return
        runner.amp_consecutive_skips += 1
        outputs['overflow'] = 1.0
        runner.logger.warning(f'{where}: fp16 gradient overflow, update skipped (loss scale now {scale:g})')
        if runner.amp_consecutive_skips >= guard.max_consecutive_skips or scale < guard.min_scale:
            raise TrainingDivergedError(
                f'{where}: {runner.amp_consecutive_skips} consecutive fp16 overflows, loss scale {scale:g} '
                f'(limits: optim_wrapper.loss_scale max_consecutive_skips={guard.max_consecutive_skips}, '
                f'min_scale={guard.min_scale:g}); training stopped as diverged (the checkpoints written so far are '
                f'untouched). Lower the learning rate, or train in fp32.')


class EvalLoop:
    """One pass over an evaluation loader: logits → metrics, summed over ranks.

    The last partial batch is padded to the compiled shape, so each input shape compiles once.
    """

    def __init__(self, runner, loader, metrics: List, mode: str) -> None:
        self.runner = runner
        self.loader = loader
        self.metrics = metrics
        self.mode = mode

    def run(self) -> Dict[str, float]:
        runner = self.runner
        runner.eval_mode = self.mode
        runner.eval_batches = len(self.loader)
        runner.call_hook('before_val_epoch')
        runner.model.set_train(False)
        step = runner.eval_step()
        for metric in self.metrics:
            if hasattr(metric, 'dataset'):
                # mmengine hands the dataset's metainfo to metrics (class names, image paths of DumpResults).
                metric.dataset = getattr(self.loader, 'dataset', None)
            metric.reset()
        progress = ProgressBar(len(self.loader)) if runner.rank == 0 and len(self.loader) else None
        batch_size = None
        for batch in self.loader:
            inputs = np.asarray(batch['inputs'])
            count = inputs.shape[0]
            batch_size = batch_size or count
            if count < batch_size:
                inputs = np.concatenate([inputs, np.repeat(inputs[-1:], batch_size - count, axis=0)])
            logits = step(inputs)[:count].astype(np.float32)
            for metric in self.metrics:
                metric.process(logits, batch['gt_label'], batch.get('sample_idx'))
            if progress is not None:
                progress.update()
        if progress is not None:
            print(flush=True)
        skipped = list(getattr(self.loader, 'skipped', []))
        if skipped:
            runner.logger.warning(self.loader.skipped_message())
        num_samples = getattr(self.loader, 'num_samples', None)
        if num_samples is not None:
            counts = dist.all_reduce_sum(np.array([num_samples - len(skipped), num_samples], np.float64))
            runner.eval_counts = (int(counts[0]), int(counts[1]))
        results: Dict[str, float] = {}
        for metric in self.metrics:
            results.update(metric.from_summary(dist.all_reduce_sum(metric.summary())))
        runner.model.set_train(True)
        runner.call_hook('after_val_epoch', results)
        return results
