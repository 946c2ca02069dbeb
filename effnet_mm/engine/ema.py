"""Exponential moving average of the model's weights (TF EfficientNet's ``ExponentialMovingAverage``)."""
from __future__ import annotations

from typing import Dict

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops


def ema_decay(decay: float, num_updates: int, warmup: bool = True) -> float:
    """TF's decay for update number ``num_updates`` (0-based count of previous updates).

    With ``warmup`` it is ``min(decay, (1 + n) / (10 + n))``: early averages follow the weights closely.
    """
    if not warmup:
        return decay
    return min(decay, (1.0 + num_updates) / (10.0 + num_updates))


# HyperMap cannot map a closure; a MultitypeFuncGraph with the decay bound by ops.partial works under jit.
_ema_update = ops.MultitypeFuncGraph('ema_update')


@_ema_update.register('Tensor', 'Tensor', 'Tensor')
def _ema_update_tensor(decay, shadow, param):
    return ops.assign(shadow, shadow * decay.astype(shadow.dtype) + param * (1.0 - decay).astype(shadow.dtype))


class EMAWeights(nn.Cell):
    """Shadow copies of every model parameter (trainable weights and BN moving statistics).

    ``construct(decay)`` updates ``shadow = decay * shadow + (1 - decay) * param`` for all parameters in one graph
    call; :meth:`swap` exchanges the model and shadow values (for evaluating or saving the averaged weights).

    Args:
        model: the network whose parameters are averaged.
    """

    def __init__(self, model: nn.Cell) -> None:
        super().__init__(auto_prefix=False)
        self.params = ParameterTuple(list(model.get_parameters()))
        self.shadow = ParameterTuple([
            Parameter(Tensor(p.asnumpy()), name=f'ema.{p.name}', requires_grad=False) for p in self.params
        ])
        self.hyper_map = ops.HyperMap()

    def construct(self, decay):
        return self.hyper_map(ops.partial(_ema_update, decay), self.shadow, self.params)

    def swap(self) -> None:
        """Exchange the model parameters and their averages (calling it twice restores the original state)."""
        for param, shadow in zip(self.params, self.shadow):
            current = param.asnumpy().copy()
            param.set_data(Tensor(shadow.asnumpy()))
            shadow.set_data(Tensor(current))

    def reset_to_model(self) -> None:
        """Make the averages equal the current model parameters (e.g. after loading pretrained weights)."""
        for param, shadow in zip(self.params, self.shadow):
            shadow.set_data(Tensor(param.asnumpy()))

    def state(self) -> Dict[str, np.ndarray]:
        """Averages by model parameter name."""
        return {p.name: s.asnumpy() for p, s in zip(self.params, self.shadow)}

    def load_state(self, state: Dict[str, object]) -> None:
        """Restore averages saved by :meth:`state` (every model parameter must be present)."""
        missing = [p.name for p in self.params if p.name not in state]
        if missing:
            raise KeyError(f'EMA state lacks {len(missing)} parameters, e.g. {missing[:5]}')
        for param, shadow in zip(self.params, self.shadow):
            value = state[param.name]
            value = value.asnumpy() if hasattr(value, 'asnumpy') else np.asarray(value)
            shadow.set_data(Tensor(value.astype(ms.dtype_to_nptype(shadow.dtype))))
