"""Exponential moving average of the weights during training."""
from __future__ import annotations

from typing import Dict, Optional

import mindspore as ms
import numpy as np

from effnet_mm.registry import HOOKS
from effnet_mm.runtime.weights import ONLINE_PREFIX, load_state

from ..ema import EMAWeights, ema_decay
from .hook import Hook


@HOOKS.register_module()
class EMAHook(Hook):
    """Exponential moving average of all weights (BN statistics included), TF EfficientNet style.

    After every optimizer update ``ema = d * ema + (1 - d) * w`` with ``d = min(1 - momentum, (1 + n) / (10 + n))``
    (``n`` = previous updates; the warm-up term is TF's ``num_updates``; with gradient accumulation only the
    micro-batches that end an update count).  Validation and the weights stored under the plain parameter names of a
    checkpoint are the averages; the raw training weights are stored as ``online.<name>`` so a resume continues
    exactly.

    Example config::

        custom_hooks = [dict(type='EMAHook', momentum=1e-4, warmup=True)]   # decay 0.9999

    Args:
        momentum: ``1 - decay`` (mmengine convention); TF's 0.9999 decay is ``momentum=1e-4``.
        warmup: use TF's ``(1 + n) / (10 + n)`` warm-up of the decay.
        begin_iter: start averaging at this global iteration (before it the average tracks the weights).
    """

    priority = 'NORMAL'
    #: Deprecated alias of :data:`effnet_mm.runtime.weights.ONLINE_PREFIX`.
    ONLINE_PREFIX = ONLINE_PREFIX

    def __init__(self, momentum: float = 1e-4, warmup: bool = True, begin_iter: int = 0) -> None:
        if not 0.0 < momentum < 1.0:
            raise ValueError(f'EMAHook: momentum (1 - decay) must be in (0, 1), got {momentum}')
        self.decay = 1.0 - momentum
        self.warmup = warmup
        self.begin_iter = begin_iter
        self.num_updates = 0
        self.ema: Optional[EMAWeights] = None

    def _ensure(self, runner) -> EMAWeights:
        # Built on first use: a resume loads its averages before training starts (before_run).
        if self.ema is None:
            self.ema = EMAWeights(runner.model)
            ema = self.ema

            def update(decay):
                return ema(decay)

            self._update = ms.jit(update)
        return self.ema

    def before_run(self, runner) -> None:
        self._ensure(runner)

    def after_train_iter(self, runner, batch_idx: int, outputs: Dict[str, float]) -> None:
        if not runner.updated:
            return
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

    def before_save_checkpoint(self, runner, state: Dict[str, np.ndarray], meta: Dict[str, str]) -> None:
        for name, value in self._ensure(runner).state().items():
            state[ONLINE_PREFIX + name] = state[name]
            state[name] = value
        meta['ema_num_updates'] = str(self.num_updates)

    def after_load_checkpoint(self, runner, state: Dict[str, object], meta: Dict[str, str], resume: bool) -> None:
        ema = self._ensure(runner)
        online = any(k.startswith(ONLINE_PREFIX) for k in state)
        # The runner loaded the plain names (the averages) into the model: they become the shadow.
        ema.reset_to_model()
        if not resume or not online:
            return  # load_from (fine-tuning) or a checkpoint without EMA: average from the loaded weights
        load_state(runner.model, state, 'EMA online weights', prefix=ONLINE_PREFIX)
        self.num_updates = int(meta.get('ema_num_updates', 0))
