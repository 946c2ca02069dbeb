"""Writing parameter values in a way compiled graphs see.

A graph compiled by ``mindspore.jit`` keeps the device tensors its parameters had at compile time: a later host-side
``Parameter.set_data``/``assign_value`` is invisible to it (measured on MindSpore 2.10 CPU), while an ``Assign``
executed inside any graph is seen by all of them.  Every parameter write of the engine (checkpoint loading, EMA
swaps, learning rate) therefore goes through a graph.
"""
from __future__ import annotations

from typing import Sequence

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

_assign = ops.MultitypeFuncGraph('assign')


@_assign.register('Tensor', 'Tensor')
def _assign_tensor(param, value):
    return ops.assign(param, value)


class _Writer(nn.Cell):

    def __init__(self, params: Sequence[Parameter]) -> None:
        super().__init__(auto_prefix=False)
        self.params = ParameterTuple(params)
        self.hyper_map = ops.HyperMap()

    def construct(self, values):
        return self.hyper_map(_assign, self.params, values)


def write_params(params: Sequence[Parameter], values: Sequence[np.ndarray]) -> None:
    """Assign ``values[i]`` (cast to the parameter's dtype) to ``params[i]`` inside a graph."""
    params = list(params)
    if not params:
        return
    tensors = tuple(Tensor(np.asarray(v).astype(ms.dtype_to_nptype(p.dtype)).reshape(p.shape))
                    for p, v in zip(params, values))
    writer = _Writer(params)

    def write(values):
        return writer(values)

    ms.jit(write)(tensors)
