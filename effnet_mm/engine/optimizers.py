"""MindSpore optimizers registered under mmengine/PyTorch-style argument names, and the param-group builder.

Every optimizer owns a scalar ``learning_rate`` Parameter: the runner writes the scheduled LR into it before each
step (see :mod:`effnet_mm.engine.schedulers`), so the jitted train step never recompiles and the LR of any iteration
is a pure function of the iteration number (exact resume).

With ``fused=True`` (the default) and the CPU kernels available, each optimizer updates all parameters in one
multi-tensor kernel (:mod:`effnet_mm.ops.optim`, like PyTorch's ``fused=True``) instead of several MindSpore ops per
parameter; the formulas, state names and checkpoints are the same either way, and the kernel is deterministic, so
resumes stay exact.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from effnet_mm.ops import kernels_unavailable_reason
from effnet_mm.ops.optim import optimizer_step_op
from effnet_mm.registry import OPTIMIZERS


def _check_common(name: str, lr: float, weight_decay: float) -> None:
    if lr < 0:
        raise ValueError(f'optim_wrapper.optimizer ({name}): lr must be >= 0, got {lr}')
    if weight_decay < 0:
        raise ValueError(f'optim_wrapper.optimizer ({name}): weight_decay must be >= 0, got {weight_decay}')


def _setup_fused(optimizer: nn.Optimizer, kind: str, hyper: Sequence[float], states: Sequence, fused: bool) -> None:
    """Give ``optimizer`` its multi-tensor kernel when ``fused`` and the kernels can run it, else mark it unfused.

    The kernel covers float32 parameters with one LR for all groups (the param-group builder only varies the
    weight decay); anything else keeps MindSpore's per-parameter ops.
    """
    optimizer.fused = bool(fused and kernels_unavailable_reason() is None and not optimizer.is_group_lr
                           and not optimizer.dynamic_weight_decay
                           and all(p.dtype == ms.float32 for p in optimizer.parameters))
    if not optimizer.fused:
        return
    decays = optimizer.weight_decay if optimizer.is_group else [optimizer.weight_decay] * len(optimizer.parameters)
    optimizer.fused_step = optimizer_step_op(kind)
    optimizer.fused_hyper = Tensor(np.asarray(hyper, np.float32))
    optimizer.fused_decay = Tensor(np.asarray([float(np.asarray(d.asnumpy() if hasattr(d, 'asnumpy') else d))
                                               for d in decays], np.float32))
    optimizer.fused_states = tuple(states)


def _fused_update(optimizer: nn.Optimizer, gradients):
    """The fused ``construct``: gradient hooks and global step as ``nn.Optimizer`` does, then one kernel for all
    parameters (the L2 / decoupled weight decay is applied inside the kernel from ``fused_decay``)."""
    gradients = optimizer.flatten_gradients(gradients)
    gradients = optimizer.gradients_centralization(gradients)
    gradients = optimizer.scale_grad(gradients)
    lr = optimizer.get_lr()
    optimizer.assignadd(optimizer.global_step, optimizer.global_step_increase_tensor)
    tensors = optimizer.parameters + gradients
    for state in optimizer.fused_states:
        tensors = tensors + state
    return optimizer.fused_step(lr, optimizer.fused_hyper, optimizer.fused_decay, *tensors)


class _PlainOpsOptimizer(nn.Optimizer):
    """Base of the optimizers written with plain MindSpore ops (exact resumes, see :class:`RMSProp`)."""

    def prepare(self, gradients):
        """``nn.Optimizer``'s gradient pipeline (weight decay, centralisation, scaling) and this step's LR."""
        gradients = self.flatten_gradients(gradients)
        gradients = self.decay_weight(gradients)
        gradients = self.gradients_centralization(gradients)
        gradients = self.scale_grad(gradients)
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        return gradients, lr


_rmsprop_update = ops.MultitypeFuncGraph('rmsprop_update')


@_rmsprop_update.register('Tensor', 'Tensor', 'Tensor', 'Tensor', 'Tensor', 'Tensor', 'Tensor', 'Tensor')
def _rmsprop_update_tensor(lr, rho, momentum, eps, param, mean_square, moment, grad):
    ms_new = mean_square * rho + grad * grad * (1.0 - rho)
    mom_new = moment * momentum + grad * lr / ops.sqrt(ms_new + eps)
    updated = ops.assign(param, param - mom_new)
    return ops.depend(updated, ops.depend(ops.assign(moment, mom_new), ops.assign(mean_square, ms_new)))


_centered_rmsprop_update = ops.MultitypeFuncGraph('centered_rmsprop_update')


@_centered_rmsprop_update.register('Tensor', 'Tensor', 'Tensor', 'Tensor', 'Tensor', 'Tensor', 'Tensor', 'Tensor',
                                   'Tensor')
def _centered_rmsprop_update_tensor(lr, rho, momentum, eps, param, mean_square, moment, mean_grad, grad):
    ms_new = mean_square * rho + grad * grad * (1.0 - rho)
    mg_new = mean_grad * rho + grad * (1.0 - rho)
    mom_new = moment * momentum + grad * lr / ops.sqrt(ms_new - mg_new * mg_new + eps)
    updated = ops.assign(param, param - mom_new)
    state = ops.depend(ops.assign(moment, mom_new), ops.depend(ops.assign(mean_square, ms_new),
                                                               ops.assign(mean_grad, mg_new)))
    return ops.depend(updated, state)


@OPTIMIZERS.register_module()
class RMSProp(_PlainOpsOptimizer):
    """TF1-style RMSProp (``eps`` inside the square root, LR inside the momentum buffer, ``mean_square`` starts at 1).

    This is the optimizer of the TF EfficientNet recipe; weight decay is L2 added to the gradient like TF's loss term.
    ``ms = rho * ms + (1 - rho) * g^2``; ``mom = momentum * mom + lr * g / sqrt(ms + eps)``; ``p -= mom``.  Written
    with plain ops (like :class:`SGD`): MindSpore's CPU ``ApplyRMSProp`` kernel made a resumed run drift from the
    uninterrupted one by ~1e-6 per step (measured on 2.10), while plain ops resume bit-exactly.  The buffers are named
    ``mean_square.<param>`` / ``moment.<param>`` (and ``mean_grad.<param>`` when centred) like ``nn.RMSProp``'s, so
    checkpoints of either load.

    Example config::

        optim_wrapper = dict(optimizer=dict(type='RMSProp', lr=0.016, alpha=0.9, momentum=0.9, eps=1e-3,
                                            weight_decay=1e-5))

    Args:
        params: parameters or param groups.
        lr: learning rate.
        alpha: decay of the squared-gradient average (TF ``decay``/``rho``); ``decay`` is accepted as an alias.
        momentum: momentum.
        eps: epsilon, inside the square root.
        weight_decay: L2 coefficient (overridden per group by the param-group builder).
        centered: centred RMSProp (per-parameter ops; not fused).
        decay: alias of ``alpha``.
        fused: update all parameters in one CPU kernel when available (same results).
    """

    def __init__(self,
                 params: Sequence,
                 lr: float = 0.01,
                 alpha: float = 0.9,
                 momentum: float = 0.0,
                 eps: float = 1e-10,
                 weight_decay: float = 0.0,
                 centered: bool = False,
                 decay: Optional[float] = None,
                 fused: bool = True) -> None:
        _check_common('RMSProp', lr, weight_decay)
        rho = float(alpha if decay is None else decay)
        if not 0.0 <= rho < 1.0 or momentum < 0 or eps <= 0:
            raise ValueError(f'optim_wrapper.optimizer (RMSProp): need 0 <= alpha < 1, momentum >= 0 and eps > 0, got '
                             f'alpha={rho}, momentum={momentum}, eps={eps}')
        super().__init__(float(lr), params, float(weight_decay))
        self.rho = Tensor(rho, ms.float32)
        self.momentum = Tensor(float(momentum), ms.float32)
        self.eps = Tensor(float(eps), ms.float32)
        self.centered = bool(centered)
        self.mean_square = self.parameters.clone(prefix='mean_square', init='ones')
        self.moment = self.parameters.clone(prefix='moment', init='zeros')
        self.mean_grad = self.parameters.clone(prefix='mean_grad', init='zeros') if centered else None
        self.hyper_map = ops.HyperMap()
        _setup_fused(self, 'rmsprop', (rho, float(momentum), float(eps)), (self.mean_square, self.moment),
                     fused and not centered)

    def construct(self, gradients):
        if self.fused:
            return _fused_update(self, gradients)
        gradients, lr = self.prepare(gradients)
        if self.centered:
            return self.hyper_map(ops.partial(_centered_rmsprop_update, lr, self.rho, self.momentum, self.eps),
                                  self.parameters, self.mean_square, self.moment, self.mean_grad, gradients)
        return self.hyper_map(ops.partial(_rmsprop_update, lr, self.rho, self.momentum, self.eps), self.parameters,
                              self.mean_square, self.moment, gradients)


_sgd_update = ops.MultitypeFuncGraph('sgd_update')


@_sgd_update.register('Tensor', 'Tensor', 'Bool', 'Tensor', 'Tensor', 'Tensor')
def _sgd_update_tensor(lr, momentum, nesterov, param, moment, grad):
    moment_new = moment * momentum + grad
    step = grad + moment_new * momentum if nesterov else moment_new
    return ops.depend(ops.assign(param, param - step * lr), ops.assign(moment, moment_new))


@OPTIMIZERS.register_module()
class SGD(_PlainOpsOptimizer):
    """SGD with (optionally Nesterov) momentum, PyTorch's formula without dampening.

    ``v = m * v + g``; ``p -= lr * v`` (or ``p -= lr * (g + m * v)`` with Nesterov).  Written with plain ops because
    MindSpore's CPU ``ApplyMomentum`` kernel ignores ``use_nesterov`` (measured on 2.10).  The buffers are named
    ``moments.<param>`` like ``nn.Momentum``'s.

    Example config::

        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False))

    Args:
        params: parameters or param groups.
        lr: learning rate.
        momentum: momentum (0 gives plain SGD).
        weight_decay: L2 coefficient.
        nesterov: Nesterov momentum.
        fused: update all parameters in one CPU kernel when available (same results).
    """

    def __init__(self,
                 params: Sequence,
                 lr: float = 0.1,
                 momentum: float = 0.0,
                 weight_decay: float = 0.0,
                 nesterov: bool = False,
                 fused: bool = True) -> None:
        _check_common('SGD', lr, weight_decay)
        if momentum < 0:
            raise ValueError(f'optim_wrapper.optimizer (SGD): momentum must be >= 0, got {momentum}')
        if nesterov and momentum <= 0:
            raise ValueError('optim_wrapper.optimizer (SGD): nesterov=True needs momentum > 0')
        super().__init__(float(lr), params, float(weight_decay))
        self.momentum = Tensor(float(momentum), ms.float32)
        self.nesterov = bool(nesterov)
        self.moments = self.parameters.clone(prefix='moments', init='zeros')
        self.hyper_map = ops.HyperMap()
        _setup_fused(self, 'sgd', (float(momentum), float(self.nesterov)), (self.moments, ), fused)

    def construct(self, gradients):
        if self.fused:
            return _fused_update(self, gradients)
        gradients, lr = self.prepare(gradients)
        return self.hyper_map(ops.partial(_sgd_update, lr, self.momentum, self.nesterov), self.parameters,
                              self.moments, gradients)


OPTIMIZERS.register_module(name='Momentum', module=SGD)


@OPTIMIZERS.register_module()
class AdamW(nn.AdamWeightDecay):
    """Adam with decoupled weight decay: MindSpore's ``AdamWeightDecay``.

    Unlike PyTorch's AdamW it has no bias correction, so early steps are larger by ``sqrt(1 - beta2**t) /
    (1 - beta1**t)`` (x3.16 at the first step with the default betas) — use a warm-up.

    Example config::

        optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05))

    Args:
        params: parameters or param groups.
        lr: learning rate.
        betas: first/second moment decays.
        eps: epsilon.
        weight_decay: decoupled weight decay.
        fused: update all parameters in one CPU kernel when available (same results).
    """

    def __init__(self,
                 params: Sequence,
                 lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8,
                 weight_decay: float = 0.01,
                 fused: bool = True) -> None:
        _check_common('AdamW', lr, weight_decay)
        super().__init__(params, learning_rate=float(lr), beta1=float(betas[0]), beta2=float(betas[1]),
                         eps=float(eps), weight_decay=float(weight_decay))
        _setup_fused(self, 'adamw', (float(betas[0]), float(betas[1]), float(eps)), (self.moments1, self.moments2),
                     fused)

    def construct(self, gradients):
        if self.fused:
            return _fused_update(self, gradients)
        return super().construct(gradients)


def _is_norm(name: str) -> bool:
    # MindSpore BN parameters are named gamma/beta (moving stats are not trainable and never reach here).
    return name.endswith('.gamma') or name.endswith('.beta')


def build_param_groups(params: Sequence[Parameter], weight_decay: float,
                       paramwise_cfg: Optional[Dict[str, float]] = None) -> List[dict]:
    """Split trainable parameters into groups by weight decay (mmengine ``paramwise_cfg`` subset).

    Example: ``paramwise_cfg=dict(norm_decay_mult=0.0)`` puts BN gamma/beta in a group without weight decay, which
    is the TF recipe's rule (L2 on every variable except batch normalisation, biases included);
    ``bias_decay_mult=0.0`` also exempts biases (a common PyTorch choice).

    Args:
        params: trainable parameters.
        weight_decay: the optimizer's weight decay.
        paramwise_cfg: ``norm_decay_mult`` and ``bias_decay_mult`` (each defaults to 1).

    Returns:
        MindSpore param groups ``[{'params': [...], 'weight_decay': wd}, ...]`` (empty groups dropped).
    """
    cfg = dict(paramwise_cfg or {})
    unknown = set(cfg) - {'norm_decay_mult', 'bias_decay_mult'}
    if unknown:
        raise KeyError(f'optim_wrapper.paramwise_cfg: unsupported keys {sorted(unknown)} '
                       f'(supported: norm_decay_mult, bias_decay_mult)')
    norm_mult = float(cfg.get('norm_decay_mult', 1.0))
    bias_mult = float(cfg.get('bias_decay_mult', 1.0))
    by_decay: Dict[float, List[Parameter]] = {}
    for param in params:
        if _is_norm(param.name):
            decay = weight_decay * norm_mult
        elif param.name.endswith('.bias'):
            decay = weight_decay * bias_mult
        else:
            decay = weight_decay
        by_decay.setdefault(decay, []).append(param)
    return [{'params': group, 'weight_decay': decay} for decay, group in by_decay.items()]


def build_optimizer(optimizer_cfg: dict, params: Sequence[Parameter],
                    paramwise_cfg: Optional[Dict[str, float]] = None) -> nn.Optimizer:
    """Build the optimizer of ``optim_wrapper.optimizer`` over ``params`` with weight-decay param groups.

    Raises:
        KeyError: unknown optimizer type (the message lists the registered ones).
        ValueError: a negative ``lr``/``weight_decay``.
    """
    cfg = dict(optimizer_cfg)
    opt_type = cfg.get('type')
    if opt_type not in OPTIMIZERS.module_dict and not callable(opt_type):
        # Trigger the lazy import of the registry locations before deciding the type is unknown.
        OPTIMIZERS.import_from_location()
        if opt_type not in OPTIMIZERS.module_dict:
            raise KeyError(f'optim_wrapper.optimizer.type={opt_type!r} is not a registered optimizer '
                           f'(expected one of {sorted(OPTIMIZERS.module_dict)})')
    lr = cfg.get('lr')
    if lr is None:
        raise KeyError(f'optim_wrapper.optimizer: "lr" is required (got {cfg})')
    if float(lr) < 0:
        raise ValueError(f'optim_wrapper.optimizer.lr must be >= 0, got {lr}')
    groups = build_param_groups(list(params), float(cfg.get('weight_decay', 0.0)), paramwise_cfg)
    return OPTIMIZERS.build(cfg, default_args=dict(params=groups))
