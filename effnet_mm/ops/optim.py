"""Multi-tensor optimizer steps and global-norm gradient clipping on CPU kernels (``optim.cc``).

MindSpore runs an optimizer as several small ops per parameter and ``ops.clip_by_global_norm`` as ~3 more per
parameter; for B0's 213 parameters that is thousands of op launches per step, which dominated a training step at
small images.  Here each is one kernel call for all parameters, like PyTorch's foreach/fused optimizers.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence, Tuple

import mindspore as ms
from mindspore import Tensor, ops

from .kernel_cell import aot_op, kernels_unavailable_reason

#: Optimizer kernels: kind -> (function, number of hyper-parameters, state tensors per parameter).
OPTIMIZER_KERNELS = {'sgd': ('effnet_sgd_step', 2, 1), 'rmsprop': ('effnet_rmsprop_step', 3, 2),
                     'adamw': ('effnet_adamw_step', 3, 2)}


def _one(*shapes):
    return (1, )


def _first(*dtypes):
    return dtypes[0]


@functools.cache
def optimizer_step_op(kind: str) -> ops.Custom:
    """The in-place step ``(lr, hyper, decay, *params, *grads, *states) -> (1,)`` of optimizer ``kind``.

    The kernel writes the parameters and states through their input buffers; the primitive is marked
    ``side_effect_mem`` so MindSpore orders it after every read of those parameters in the graph and keeps it even
    when its (dependency-only) output is unused.  See ``optim.cc`` for the formulas.
    """
    func, _, _ = OPTIMIZER_KERNELS[kind]
    op = aot_op(func, out_shape=_one, out_dtype=_first)
    op.add_prim_attr('side_effect_mem', True)
    return op


@functools.cache
def ema_update_op() -> ops.Custom:
    """The in-place ``(decay (1,), *shadows, *params) -> (1,)``: ``shadow = decay * shadow + (1 - decay) * param``
    for every pair, in one kernel (``side_effect_mem`` like :func:`optimizer_step_op`)."""
    op = aot_op('effnet_ema_update', out_shape=_one, out_dtype=_first)
    op.add_prim_attr('side_effect_mem', True)
    return op


@functools.cache
def _clip_op() -> ops.Custom:
    def out_shape(max_norm, *shapes):
        return tuple(shapes)

    def out_dtype(max_norm, *dtypes):
        return tuple(dtypes)

    return aot_op('effnet_clip_global_norm', out_shape=out_shape, out_dtype=out_dtype)


def clip_by_global_norm(grads: Sequence[Tensor], max_norm: Tensor) -> Tuple[Tensor, ...]:
    """``grads * max_norm / max(global L2 norm, max_norm)``, as ``mindspore.ops.clip_by_global_norm``, in one kernel.

    ``max_norm`` is a float32 ``(1,)`` tensor.  Usable inside ``ms.jit``; the gradients must be float32.
    """
    return _clip_op()(max_norm, *grads)


def make_grad_clipper(max_norm: float) -> Callable[[Tuple[Tensor, ...]], Tuple[Tensor, ...]]:
    """``grads -> grads`` clipped to the global L2 norm ``max_norm``: one kernel when the kernels are available,
    else ``mindspore.ops.clip_by_global_norm``.  Call it inside the jitted train step."""
    if kernels_unavailable_reason() is not None:
        def clip(grads):
            return ops.clip_by_global_norm(grads, max_norm)
    else:
        norm = Tensor([max_norm], ms.float32)
        op = _clip_op()

        def clip(grads):
            return op(norm, *grads)

    return clip
