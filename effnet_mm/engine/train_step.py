"""The graph-mode (``mindspore.jit``) training step: loss, gradients, all-reduce, clipping, loss scaling, update."""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import mindspore as ms
from mindspore import Tensor, amp, nn, ops

from effnet_mm.ops.optim import make_grad_clipper


class LossCell(nn.Cell):
    """``model.loss(inputs, labels)`` as a cell, so AMP can wrap it and ``value_and_grad`` can differentiate it."""

    def __init__(self, model: nn.Cell) -> None:
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, inputs, labels):
        return self.model.loss(inputs, labels)


def build_loss_scaler(loss_scale: object) -> Optional[amp.LossScaler]:
    """Loss scaler of an ``AmpOptimWrapper`` config value.

    ``'dynamic'`` gives ``DynamicLossScaler(2**16, 2, 2000)`` (mmengine's GradScaler defaults); a dict gives a dynamic
    scaler with ``init_scale``/``growth_factor``/``growth_interval``; a number gives a static scale.
    """
    if loss_scale is None:
        return None
    if loss_scale == 'dynamic':
        return amp.DynamicLossScaler(2.0**16, 2, 2000)
    if isinstance(loss_scale, dict):
        unknown = set(loss_scale) - {'init_scale', 'growth_factor', 'growth_interval'}
        if unknown:
            raise KeyError(f'optim_wrapper.loss_scale: unsupported keys {sorted(unknown)} '
                           f'(supported: init_scale, growth_factor, growth_interval)')
        return amp.DynamicLossScaler(float(loss_scale.get('init_scale', 2.0**16)),
                                     int(loss_scale.get('growth_factor', 2)),
                                     int(loss_scale.get('growth_interval', 2000)))
    if isinstance(loss_scale, (int, float)) and loss_scale > 0:
        return amp.StaticLossScaler(float(loss_scale))
    raise ValueError(f'optim_wrapper.loss_scale must be "dynamic", a dict or a positive number, got {loss_scale!r}')


def make_train_step(loss_cell: nn.Cell,
                    optimizer: nn.Optimizer,
                    max_norm: Optional[float] = None,
                    loss_scaler: Optional[amp.LossScaler] = None,
                    grad_reducer: Optional[nn.Cell] = None) -> Callable[..., Tuple[Tensor, Tensor]]:
    """A jitted ``step(inputs, labels, lr) -> (loss, finite)`` that updates the weights in place with LR ``lr``.

    ``finite`` is False when AMP found an overflow: that update is skipped and the dynamic scale shrinks.  Every call
    of this function compiles a fresh graph, whose random kernels restart from the current global seed (the runner
    relies on this to make dropout/drop-path streams a function of ``(seed, epoch)``).

    Args:
        loss_cell: ``(inputs, labels) -> scalar loss``.
        optimizer: updates ``optimizer.parameters``.
        max_norm: clip gradients to this global norm (after all-reduce and unscaling).
        loss_scaler: AMP loss scaler, or None for fp32 training.
        grad_reducer: ``nn.DistributedGradReducer`` in data-parallel training.
    """

    def forward(inputs, labels):
        loss = loss_cell(inputs, labels)
        if loss_scaler is not None:
            return loss_scaler.scale(loss), loss
        return loss, loss

    grad_fn = ms.value_and_grad(forward, None, optimizer.parameters, has_aux=True)
    clip = make_grad_clipper(max_norm) if max_norm is not None else None
    # In data-parallel training the logged loss is the global-batch mean, comparable with a single-process run.
    loss_all_reduce = ops.AllReduce() if grad_reducer is not None else None
    world_size = 1.0
    if grad_reducer is not None:
        from mindspore.communication import get_group_size
        world_size = float(get_group_size())

    def step(inputs, labels, lr):
        # The LR is an input assigned inside the graph: host-side set_data would be invisible to the compiled graph.
        ops.assign(optimizer.learning_rate, lr)
        (_, loss), grads = grad_fn(inputs, labels)
        if grad_reducer is not None:
            grads = grad_reducer(grads)
            loss = loss_all_reduce(loss) / world_size
        finite = Tensor(True)
        if loss_scaler is not None:
            grads = loss_scaler.unscale(grads)
            finite = amp.all_finite(grads)
            loss_scaler.adjust(finite)
        if clip is not None:
            grads = clip(grads)
        if finite:
            optimizer(grads)
        return loss, finite

    return ms.jit(step)


def make_eval_step(model: nn.Cell) -> Callable[[Tensor], Tensor]:
    """A jitted ``inputs -> logits`` forward (call ``model.set_train(False)`` first)."""

    def forward(inputs):
        return model(inputs)

    return ms.jit(forward)
