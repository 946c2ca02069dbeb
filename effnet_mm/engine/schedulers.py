"""Learning-rate schedules computed in Python, one value per training iteration.

mmengine's schedulers mutate a PyTorch optimizer step by step; here every scheduler is a *closed form*: a
multiplicative factor of the base learning rate as a function of the global iteration.  The LR of iteration ``t``
is ``base_lr * prod(s.factor(t) for s in schedulers)``, so it depends only on ``t`` and resuming is exact.

Semantics follow mmengine: ``begin``/``end`` bound where a scheduler acts (epochs when ``by_epoch=True``, else
iterations); before ``begin`` its factor is 1, from ``end`` on it keeps its last value.  An epoch-based scheduler
changes the LR only at epoch boundaries unless ``convert_to_iter_based=True``, which converts ``begin``, ``end`` and
epoch-valued arguments (``step_size``, ``milestones``, ``T_max``) to iterations and updates every iteration.
"""
from __future__ import annotations

import abc
import bisect
import math
from typing import List, Optional, Sequence

from effnet_mm.registry import PARAM_SCHEDULERS

INF = int(1e12)


class LRScheduler(abc.ABC):
    """Base class: a factor of the base LR over ``[begin, end)`` in its own unit (epochs or iterations).

    Args:
        begin: first step (epoch or iteration) the scheduler acts on.
        end: first step it no longer acts on (``None``: forever).
        by_epoch: ``begin``/``end`` and step-valued arguments are in epochs.
        convert_to_iter_based: with ``by_epoch=True``, update every iteration instead of every epoch.
    """

    #: Names of constructor arguments given in steps (converted with ``convert_to_iter_based``).
    step_args: Sequence[str] = ()

    def __init__(self,
                 begin: float = 0,
                 end: Optional[float] = None,
                 by_epoch: bool = True,
                 convert_to_iter_based: bool = False) -> None:
        end = INF if end is None else end
        if begin < 0 or end <= begin:
            raise ValueError(f'{type(self).__name__}: need 0 <= begin < end, got begin={begin}, end={end}')
        if convert_to_iter_based and not by_epoch:
            raise ValueError(f'{type(self).__name__}: convert_to_iter_based=True needs by_epoch=True')
        self.begin = begin
        self.end = end
        self.by_epoch = by_epoch
        self.convert_to_iter_based = convert_to_iter_based
        self.epoch_length: Optional[int] = None

    def bind(self, epoch_length: int) -> LRScheduler:
        """Fix the iterations per epoch; converts epoch units to iterations when ``convert_to_iter_based``."""
        if epoch_length <= 0:
            raise ValueError(f'{type(self).__name__}: epoch_length must be positive, got {epoch_length}')
        self.epoch_length = epoch_length
        if self.convert_to_iter_based:
            # Like mmengine's build_iter_from_epoch: bounds are truncated to whole iterations, step sizes are not.
            self.begin = int(self.begin * epoch_length)
            self.end = INF if self.end >= INF else int(self.end * epoch_length)
            self._scale_steps(epoch_length)
        return self

    def _scale_steps(self, epoch_length: int) -> None:  # noqa: B027 (optional hook, most schedulers have none)
        """Convert the scheduler's own epoch-valued arguments to iterations."""

    def step_of(self, epoch: int, iteration: int) -> int:
        """The step this scheduler sees at global ``iteration`` (inside 0-based ``epoch``)."""
        if self.by_epoch and not self.convert_to_iter_based:
            return epoch
        return iteration

    def factor(self, epoch: int, iteration: int) -> float:
        """LR multiplier at global ``iteration`` (0-based) within 0-based ``epoch``."""
        step = self.step_of(epoch, iteration)
        if step < self.begin:
            return 1.0
        last = self.end - 1
        return self._factor(min(step, last) - self.begin)

    @abc.abstractmethod
    def _factor(self, t: float) -> float:
        """LR multiplier ``t`` steps after ``begin``."""


@PARAM_SCHEDULERS.register_module()
class LinearLR(LRScheduler):
    """Linear ramp of the LR factor from ``start_factor`` to ``end_factor`` (warm-up).

    Reaches ``end_factor`` at step ``end - 1`` like mmengine (``total_iters = end - begin - 1``).

    Example config::

        dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5, convert_to_iter_based=True)

    Args:
        start_factor: factor at ``begin`` (0 gives TF's ``lr * step / warmup_steps``).
        end_factor: factor at ``end - 1`` and after.
    """

    def __init__(self, start_factor: float = 1.0 / 3, end_factor: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= start_factor <= 1.0 or not 0.0 < end_factor <= 1.0:
            raise ValueError(f'LinearLR: need 0 <= start_factor <= 1 and 0 < end_factor <= 1, got '
                             f'start_factor={start_factor}, end_factor={end_factor}')
        if self.end >= INF:
            raise ValueError('LinearLR: end must be given')
        self.start_factor = start_factor
        self.end_factor = end_factor

    def _factor(self, t: float) -> float:
        total = self.end - self.begin - 1
        if total <= 0:
            return self.end_factor
        return self.start_factor + (self.end_factor - self.start_factor) * min(t, total) / total


@PARAM_SCHEDULERS.register_module()
class StepLR(LRScheduler):
    """Multiply the LR by ``gamma`` every ``step_size`` steps (a staircase).

    ``step_size`` may be fractional, which gives TF EfficientNet's decay of 0.97 every 2.4 epochs
    (``lr * 0.97 ** floor(iteration / (2.4 * iters_per_epoch))``) with ``convert_to_iter_based=True``.

    Example config::

        dict(type='StepLR', step_size=2.4, gamma=0.97, by_epoch=True, begin=0, convert_to_iter_based=True)

    Args:
        step_size: steps between decays.
        gamma: decay factor.
    """

    def __init__(self, step_size: float, gamma: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        if step_size <= 0 or gamma <= 0:
            raise ValueError(f'StepLR: step_size and gamma must be positive, got step_size={step_size}, '
                             f'gamma={gamma}')
        self.step_size = step_size
        self.gamma = gamma

    def _scale_steps(self, epoch_length: int) -> None:
        self.step_size = self.step_size * epoch_length

    def _factor(self, t: float) -> float:
        # The small tolerance keeps exact multiples (e.g. 2.4 * 5 = 11.999999...) on the right stair.
        return self.gamma**math.floor(t / self.step_size + 1e-9)


@PARAM_SCHEDULERS.register_module()
class ExponentialLR(LRScheduler):
    """Multiply the LR by ``gamma`` every step (``lr * gamma ** t``).

    Example config::

        dict(type='ExponentialLR', gamma=0.97, by_epoch=True)

    Args:
        gamma: decay per step.
    """

    def __init__(self, gamma: float, **kwargs) -> None:
        super().__init__(**kwargs)
        if gamma <= 0:
            raise ValueError(f'ExponentialLR: gamma must be positive, got {gamma}')
        self.gamma = gamma

    def _factor(self, t: float) -> float:
        return self.gamma**t


@PARAM_SCHEDULERS.register_module()
class MultiStepLR(LRScheduler):
    """Multiply the LR by ``gamma`` at each milestone (counted from ``begin``).

    Example config::

        dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)

    Args:
        milestones: increasing steps at which the LR decays.
        gamma: decay factor.
    """

    def __init__(self, milestones: Sequence[float], gamma: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        milestones = list(milestones)
        if milestones != sorted(milestones) or any(m <= 0 for m in milestones):
            raise ValueError(f'MultiStepLR: milestones must be positive and increasing, got {milestones}')
        self.milestones: List[float] = milestones
        self.gamma = gamma

    def _scale_steps(self, epoch_length: int) -> None:
        self.milestones = [m * epoch_length for m in self.milestones]

    def _factor(self, t: float) -> float:
        return self.gamma**bisect.bisect_right(self.milestones, t)


@PARAM_SCHEDULERS.register_module()
class CosineAnnealingLR(LRScheduler):
    """Half-cosine from the base LR down to ``eta_min`` over ``T_max`` steps.

    Example config::

        dict(type='CosineAnnealingLR', T_max=95, eta_min=1e-6, by_epoch=True, begin=5, end=100,
             convert_to_iter_based=True)

    Args:
        T_max: steps of the half period (default ``end - begin``).
        eta_min: final LR (absolute); or give ``eta_min_ratio`` (fraction of the base LR).
        eta_min_ratio: final LR as a fraction of the base LR.
    """

    def __init__(self,
                 T_max: Optional[float] = None,
                 eta_min: Optional[float] = None,
                 eta_min_ratio: Optional[float] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if eta_min is not None and eta_min_ratio is not None:
            raise ValueError('CosineAnnealingLR: give eta_min or eta_min_ratio, not both')
        if T_max is None and self.end >= INF:
            raise ValueError('CosineAnnealingLR: give T_max or end')
        self.T_max = T_max
        self.eta_min = 0.0 if eta_min is None and eta_min_ratio is None else eta_min
        self.eta_min_ratio = eta_min_ratio
        self.base_lr: Optional[float] = None

    def _scale_steps(self, epoch_length: int) -> None:
        if self.T_max is not None:
            self.T_max = self.T_max * epoch_length

    def _factor(self, t: float) -> float:
        period = self.T_max if self.T_max is not None else self.end - self.begin
        if self.eta_min_ratio is not None:
            floor = self.eta_min_ratio
        else:
            if self.base_lr is None:
                raise RuntimeError('CosineAnnealingLR with eta_min needs base_lr (set by LRSchedule)')
            floor = self.eta_min / self.base_lr if self.base_lr > 0 else 0.0
        return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * min(t, period) / period)) / 2.0


@PARAM_SCHEDULERS.register_module()
class ConstantLR(LRScheduler):
    """Constant factor over ``[begin, end)``, 1 afterwards (mmengine's ConstantLR).

    Example config::

        dict(type='ConstantLR', factor=0.5, by_epoch=True, begin=0, end=2)

    Args:
        factor: LR multiplier while active.
    """

    def __init__(self, factor: float = 1.0 / 3, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 < factor <= 1.0:
            raise ValueError(f'ConstantLR: factor must be in (0, 1], got {factor}')
        self.factor_value = factor

    def factor(self, epoch: int, iteration: int) -> float:
        step = self.step_of(epoch, iteration)
        return self.factor_value if self.begin <= step < self.end else 1.0

    def _factor(self, t: float) -> float:
        return self.factor_value


class LRSchedule:
    """The LR of every iteration from a base LR and a list of schedulers (their factors multiply).

    Args:
        base_lr: LR before scheduling (after ``auto_scale_lr``).
        schedulers: scheduler configs or instances; ``[]`` keeps the LR constant.
        epoch_length: training iterations per epoch.
    """

    def __init__(self, base_lr: float, schedulers: Sequence[object], epoch_length: int) -> None:
        self.base_lr = float(base_lr)
        self.epoch_length = int(epoch_length)
        self.schedulers: List[LRScheduler] = []
        for index, item in enumerate(schedulers):
            if isinstance(item, dict):
                try:
                    item = PARAM_SCHEDULERS.build(item)
                except KeyError as err:
                    raise KeyError(f'param_scheduler[{index}]: unknown type {item.get("type")!r} '
                                   f'(registered: {sorted(PARAM_SCHEDULERS.module_dict)})') from err
            if not isinstance(item, LRScheduler):
                raise TypeError(f'param_scheduler[{index}] is a {type(item).__name__}, expected an LR scheduler')
            item.bind(self.epoch_length)
            if isinstance(item, CosineAnnealingLR):
                item.base_lr = self.base_lr
            self.schedulers.append(item)

    def lr_at(self, iteration: int) -> float:
        """LR used by the update of global 0-based ``iteration``."""
        epoch = iteration // self.epoch_length
        value = self.base_lr
        for scheduler in self.schedulers:
            value *= scheduler.factor(epoch, iteration)
        return value
