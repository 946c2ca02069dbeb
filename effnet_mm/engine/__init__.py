"""Training engine: runner, loops, the compiled step, optimizers, LR schedules, hooks, EMA, AMP, logging backends.

Importing this package registers the optimizers, schedulers, hooks, vis backends and the runner.
"""
from .ema import EMAWeights, ema_decay
from .hooks import CheckpointHook, DistSamplerSeedHook, EMAHook, Hook, IterTimerHook, LoggerHook, ParamSchedulerHook
from .loops import TrainingDivergedError
from .optimizers import SGD, AdamW, RMSProp, build_optimizer, build_param_groups
from .runner import Runner
from .schedulers import ConstantLR, CosineAnnealingLR, ExponentialLR, LinearLR, LRSchedule, MultiStepLR, StepLR
from .visbackends import LocalVisBackend, TensorboardVisBackend

__all__ = [
    'Runner', 'Hook', 'IterTimerHook', 'LoggerHook', 'ParamSchedulerHook', 'DistSamplerSeedHook', 'CheckpointHook',
    'EMAHook', 'EMAWeights', 'ema_decay', 'RMSProp', 'SGD', 'AdamW', 'build_optimizer', 'build_param_groups',
    'LRSchedule', 'LinearLR', 'StepLR', 'ExponentialLR', 'MultiStepLR', 'CosineAnnealingLR', 'ConstantLR',
    'LocalVisBackend', 'TensorboardVisBackend', 'TrainingDivergedError'
]
