"""Training hooks (mmengine's hook points, on the MindSpore runner); see :class:`~.hook.Hook` for the call order."""
from .checkpoint_hook import CheckpointHook
from .ema_hook import EMAHook
from .hook import PRIORITIES, Hook, priority_value
from .logger_hook import LoggerHook
from .runtime_hooks import DistSamplerSeedHook, IterTimerHook, ParamSchedulerHook

__all__ = ['CheckpointHook', 'DistSamplerSeedHook', 'EMAHook', 'Hook', 'IterTimerHook', 'LoggerHook', 'PRIORITIES',
           'ParamSchedulerHook', 'priority_value']
