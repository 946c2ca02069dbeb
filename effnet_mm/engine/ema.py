"""Exponential moving average of the model's weights (TF EfficientNet's ``ExponentialMovingAverage``)."""
from __future__ import annotations

from typing import Dict

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from effnet_mm.ops import kernels_unavailable_reason
from effnet_mm.ops.optim import ema_update_op


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


_copy = ops.MultitypeFuncGraph('ema_copy')


@_copy.register('Tensor', 'Tensor')
def _copy_tensor(dst, src):
    return ops.assign(dst, src)


class _Copier(nn.Cell):
    """``dst[i] <- src[i]`` for two parameter tuples, in one graph."""

    def __init__(self, dst: ParameterTuple, src: ParameterTuple) -> None:
        super().__init__(auto_prefix=False)
        self.dst = dst
        self.src = src
        self.hyper_map = ops.HyperMap()

    def construct(self):
        return self.hyper_map(_copy, self.dst, self.src)


def _jit_copier(dst: ParameterTuple, src: ParameterTuple):
    copier = _Copier(dst, src)

    def copy():
        return copier()

    return ms.jit(copy)


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
        # One multi-tensor kernel for all parameters on CPU (3 MindSpore ops per parameter otherwise).
        self.fused = kernels_unavailable_reason() is None and all(p.dtype == ms.float32 for p in self.params)
        self.fused_update = ema_update_op() if self.fused else None
        self._to_backup = None
        self._model_to_shadow = None

    def construct(self, decay):
        if self.fused:
            return self.fused_update(decay.astype(ms.float32), *(self.shadow + self.params))
        return self.hyper_map(ops.partial(_ema_update, decay), self.shadow, self.params)

    def swap(self) -> None:
        """Exchange the model parameters and their averages (calling it twice restores the original state)."""
        # Three separate graph calls: inside one graph a read of a parameter is not ordered before its overwrite.
        if self._to_backup is None:
            self.backup = ParameterTuple([
                Parameter(Tensor(np.zeros(p.shape, ms.dtype_to_nptype(p.dtype))), name=f'ema_backup.{p.name}',
                          requires_grad=False) for p in self.params
            ])
            self._to_backup = _jit_copier(self.backup, self.params)
            self._shadow_to_model = _jit_copier(self.params, self.shadow)
            self._backup_to_shadow = _jit_copier(self.shadow, self.backup)
        self._to_backup()
        self._shadow_to_model()
        self._backup_to_shadow()

    def reset_to_model(self) -> None:
        """Make the averages equal the current model parameters (e.g. after loading pretrained weights)."""
        if self._model_to_shadow is None:
            self._model_to_shadow = _jit_copier(self.shadow, self.params)
        self._model_to_shadow()

    def state(self) -> Dict[str, np.ndarray]:
        """Averages by model parameter name."""
        return {p.name: s.asnumpy() for p, s in zip(self.params, self.shadow)}
