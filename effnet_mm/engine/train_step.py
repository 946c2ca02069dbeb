"""The compiled training step: loss, gradients, accumulation, all-reduce, loss scaling, clipping, update.

:class:`TrainStep` is built once per run and its graph compiled once per input shape.  Everything that changes from
step to step is an input of the graph: the batch, the targets, the learning rate, the drop-path/dropout factors
(:mod:`.randomness`), the accumulation weight and whether this micro-batch ends an update.  Nothing is rebuilt per
epoch, and nothing depends on the state of a random kernel, so resuming from any iteration is exact.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from effnet_mm.ops.optim import make_grad_clipper

from .amp import apply_amp
from .optim_wrapper import OptimWrapper

#: Name prefix of the gradient-accumulation buffers (saved in training checkpoints for mid-group resumes).
ACCUM_PREFIX = 'accum_grad.'

_accumulate = ops.MultitypeFuncGraph('accumulate')


@_accumulate.register('Tensor', 'Tensor')
def _accumulate_tensor(buffer, grad):
    return ops.assign_add(buffer, grad)


_clear = ops.MultitypeFuncGraph('clear')


@_clear.register('Tensor')
def _clear_tensor(buffer):
    return ops.assign(buffer, ops.zeros_like(buffer))


class LossCell(nn.Cell):
    """``model.loss`` as a cell, so AMP can wrap it and ``value_and_grad`` can differentiate it."""

    def __init__(self, model: nn.Cell) -> None:
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, inputs, targets, drop_masks=None, dropout_mask=None):
        return self.model.loss(inputs, targets, drop_masks, dropout_mask)


class TrainStep:
    """``step(inputs, targets, lr, drop_masks, dropout_mask, loss_weight, apply_update, mix) -> (loss, finite)``.

    * ``targets``: integer labels ``(N,)``, or soft targets ``(N, C)`` with batch augments.
    * ``mix``: ``(perm, mask)`` of Mixup/CutMix (:mod:`effnet_mm.models.batch_augments`): the step feeds
      ``x * mask + x[perm] * (1 - mask)`` to the model; None without batch augments.
    * ``loss_weight``: the factor of this micro-batch's loss in the update (``1 / micro-batches of the update``;
      1 without accumulation).
    * ``apply_update``: False accumulates the gradient only; True also updates the weights with the sum.
    * ``finite``: False when the update was skipped: under AMP because a gradient was not finite (an fp16
      overflow), in fp32 because the loss was not (a diverged run, which the caller stops).
    * ``loss``: the micro-batch loss, averaged over the data-parallel ranks.

    Args:
        model: the classifier (``model.loss``).
        wrapper: optimizer and step settings from :func:`~effnet_mm.engine.optim_wrapper.build_optim_wrapper`.
        grad_reducer: ``nn.DistributedGradReducer`` in data-parallel training.
    """

    def __init__(self, model: nn.Cell, wrapper: OptimWrapper, grad_reducer: Optional[nn.Cell] = None) -> None:
        self.wrapper = wrapper
        optimizer = wrapper.optimizer
        self.accumulate = wrapper.accumulative_counts > 1
        loss_cell = LossCell(model)
        if wrapper.amp_level is not None:
            loss_cell = apply_amp(loss_cell, wrapper.amp_level)
        scaler = wrapper.loss_scaler
        self.buffers: Optional[ParameterTuple] = None
        if self.accumulate:
            self.buffers = ParameterTuple([
                Parameter(Tensor(np.zeros(p.shape, ms.dtype_to_nptype(p.dtype))), name=f'{ACCUM_PREFIX}{p.name}',
                          requires_grad=False) for p in optimizer.parameters
            ])

        def forward(inputs, targets, drop_masks, dropout_mask, loss_weight, mix_perm, mix_mask):
            if mix_perm is not None:
                images = inputs.astype(ms.float32)
                inputs = images * mix_mask + ops.gather(images, mix_perm, 0) * (1.0 - mix_mask)
            loss = loss_cell(inputs, targets, drop_masks, dropout_mask)
            weighted = loss * loss_weight
            if scaler is not None:
                weighted = scaler.scale(weighted)
            return weighted, loss

        grad_fn = ms.value_and_grad(forward, None, optimizer.parameters, has_aux=True)
        world_size = 1.0
        loss_all_reduce = None
        if grad_reducer is not None:
            from mindspore.communication import get_group_size
            world_size = float(get_group_size())
            loss_all_reduce = ops.AllReduce()
        hyper_map = ops.HyperMap()
        buffers = self.buffers
        max_norm = wrapper.max_norm
        # One kernel for the global norm and the scaling on CPU (MindSpore's clip is ~3 ops per parameter).
        clip = make_grad_clipper(max_norm) if max_norm is not None else None

        def update(grads, lr, loss):
            # The LR is an input assigned inside the graph: a host-side set_data is invisible to a compiled graph.
            ops.assign(optimizer.learning_rate, lr)
            if grad_reducer is not None:
                grads = grad_reducer(grads)
            if scaler is not None:
                grads = scaler.unscale(grads)
                finite = ms.amp.all_finite(grads)
                scaler.adjust(finite)
            else:
                # fp32: the loss decides (one scalar instead of a pass over every gradient, ~4 % of a 64 px step); a
                # non-finite gradient under a finite loss makes the next loss non-finite, and non-finite weights are
                # never saved.
                finite = ops.isfinite(loss)
            if clip is not None:
                grads = clip(grads)
            if finite:
                optimizer(grads)
            return finite

        def step(inputs, targets, lr, drop_masks, dropout_mask, loss_weight, apply_update, mix_perm, mix_mask):
            (_, loss), grads = grad_fn(inputs, targets, drop_masks, dropout_mask, loss_weight, mix_perm, mix_mask)
            if loss_all_reduce is not None:
                # The logged loss is the global-batch mean, comparable with a single-process run.
                loss = loss_all_reduce(loss) / world_size
            if buffers is None:
                return loss, update(grads, lr, loss)
            grads = hyper_map(_accumulate, buffers, grads)
            finite = Tensor(True)
            if apply_update:
                finite = update(grads, lr, loss)
                hyper_map(_clear, buffers)
            return loss, finite

        self._step: Callable = ms.jit(step)

    def __call__(self, inputs: np.ndarray, targets: np.ndarray, lr: float, drop_masks: Optional[np.ndarray],
                 dropout_mask: Optional[np.ndarray], loss_weight: float = 1.0, apply_update: bool = True,
                 mix: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> Tuple[float, bool]:
        """Run one (micro-)step on host arrays; returns ``(loss, finite)`` as Python values."""
        mix_perm, mix_mask = (None, None) if mix is None else (Tensor(mix[0]), Tensor(mix[1]))
        loss, finite = self._step(Tensor(inputs), Tensor(targets), Tensor(lr, ms.float32),
                                  None if drop_masks is None else Tensor(drop_masks),
                                  None if dropout_mask is None else Tensor(dropout_mask),
                                  Tensor(loss_weight, ms.float32), Tensor(bool(apply_update)), mix_perm, mix_mask)
        return float(loss.asnumpy()), bool(finite.asnumpy())

    def loss_scale(self) -> Optional[float]:
        """The current loss scale (None in fp32)."""
        scaler = self.wrapper.loss_scaler
        return None if scaler is None else float(scaler.scale_value.asnumpy())


def make_eval_step(model: nn.Cell) -> Callable[[Tensor], Tensor]:
    """A jitted ``inputs -> logits`` forward (call ``model.set_train(False)`` first)."""

    def forward(inputs):
        return model(inputs)

    return ms.jit(forward)
