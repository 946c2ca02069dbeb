"""The hook base class and priorities (mmengine's hook points, on the MindSpore runner)."""
from __future__ import annotations

from typing import Dict, Union

import numpy as np

PRIORITIES = {'HIGHEST': 0, 'VERY_HIGH': 10, 'HIGH': 30, 'ABOVE_NORMAL': 40, 'NORMAL': 50, 'BELOW_NORMAL': 60,
              'LOW': 70, 'VERY_LOW': 90, 'LOWEST': 100}


def priority_value(priority: Union[str, int]) -> int:
    """The number of a priority name (``'NORMAL'`` → 50) or number; lower runs first."""
    if isinstance(priority, str):
        if priority not in PRIORITIES:
            raise ValueError(f'hook priority must be one of {sorted(PRIORITIES)} or an int, got {priority!r}')
        return PRIORITIES[priority]
    return int(priority)


class Hook:
    """Base hook: every method is a no-op, subclasses override the points they need.

    The runner calls, in order of ``priority`` (lower first): ``before_run``; per data epoch ``before_train_epoch``;
    per iteration ``before_train_iter``, ``after_train_iter``, then (iteration-based training) validation when due,
    then ``after_iter``; at the end of an epoch ``after_train_epoch``, then (epoch-based training) validation when
    due, then ``after_epoch``; ``after_run``.  Validation and test passes call ``before_val_epoch`` /
    ``after_val_epoch``.  ``before_save_checkpoint`` / ``after_load_checkpoint`` let a hook add or read entries of a
    training checkpoint.
    """

    priority = 'NORMAL'

    def before_run(self, runner) -> None:
        """Once, before training (after the model, loaders and optimizer exist and a resume is loaded)."""

    def before_train_epoch(self, runner) -> None:
        """At the start (or, after a mid-epoch resume, the continuation) of every data epoch."""

    def before_train_iter(self, runner, batch_idx: int) -> None:
        """Before the step of batch ``batch_idx`` of the epoch."""

    def after_train_iter(self, runner, batch_idx: int, outputs: Dict[str, float]) -> None:
        """After the step; ``outputs`` holds at least ``loss``."""

    def after_iter(self, runner) -> None:
        """After the iteration and the validation it triggered (iteration-based training), if any."""

    def after_train_epoch(self, runner) -> None:
        """After the last training batch of the epoch, before its validation."""

    def before_val_epoch(self, runner) -> None:
        """Before a validation or test pass."""

    def after_val_epoch(self, runner, metrics: Dict[str, float]) -> None:
        """After a validation or test pass, with its metrics."""

    def after_epoch(self, runner) -> None:
        """After the training epoch and its validation (epoch-based training)."""

    def after_run(self, runner) -> None:
        """Once, after training."""

    def before_save_checkpoint(self, runner, state: Dict[str, np.ndarray], meta: Dict[str, str]) -> None:
        """Add tensors (``state``, name → array) or metadata strings (``meta``) to a training checkpoint."""

    def after_load_checkpoint(self, runner, state: Dict[str, object], meta: Dict[str, str], resume: bool) -> None:
        """Read entries of a checkpoint just loaded (``resume``: a training resume, not ``load_from``)."""
