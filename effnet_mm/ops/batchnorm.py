"""BatchNorm + optional SiLU in one layer (like timm's ``BatchNormAct2d``), on CPU kernels (``batchnorm.cc``).

oneDNN's NCHW batch norm (``ncsp_bnorm``) took ~40 % of a B0 inference step and ~30 % of a training step on CPU,
and SiLU costs two more passes forward and several backward.  Here the forward is one statistics pass plus one
``act(x * scale + shift)`` pass, and the backward one pass for the per-channel sums plus one for ``dx`` (the full
batch-norm gradient through the batch statistics, with the activation's derivative recomputed in place).
"""
from __future__ import annotations

import functools
from typing import Callable

import mindspore as ms
from mindspore import Tensor, nn, ops

from .kernel_cell import Float32Cell, KernelSwitch, aot_op, like

#: Splits a ``(2, C)`` pair into its rows.  One primitive, where ``t[0]``/``t[1]`` each expand into MindSpore's
#: integer-indexing meta graph: for B0's 49 BN layers, forward and backward, that indexing cost ~2 s of the train
#: step's graph compile (benchmarks/bench_compile.py).
_unstack = ops.Unstack(axis=0)


@functools.cache
def bn_stats_op() -> ops.Custom:
    """``x -> (2, C)``: batch mean and biased variance over (N, H, W); no gradient (see :func:`bn_act_op`)."""
    return aot_op('effnet_bn_stats', out_shape=lambda x: (2, x[1]), out_dtype=like(0))


def _bn_kernel_name(silu: bool) -> str:
    return 'effnet_bn_act_silu' if silu else 'effnet_bn_act'


@functools.cache
def bn_act_grad(silu: bool, batch_stats: bool) -> Callable:
    """``(x, gamma, beta, stats, eps, dy) -> (dx, d gamma, d beta, 0, 0)``: the backward of :func:`bn_act_op`."""
    name = _bn_kernel_name(silu)
    grad_params = aot_op(f'{name}_grad_params', out_shape=lambda dy, x, g, b, s, e: (2, g[0]), out_dtype=like(1))
    grad_x = aot_op(f'{name}_grad_x_batch' if batch_stats else f'{name}_grad_x', out_shape=like(1),
                    out_dtype=like(1))

    def grads(x, gamma, beta, stats, eps, dy):
        sums = grad_params(dy, x, gamma, beta, stats, eps)  # [d gamma, d beta]
        dx = grad_x(dy, x, gamma, beta, stats, eps, sums) if batch_stats else grad_x(dy, x, gamma, beta, stats, eps)
        d_gamma, d_beta = _unstack(sums)
        return dx, d_gamma, d_beta, ops.zeros_like(stats), ops.zeros_like(eps)

    return grads


@functools.cache
def bn_act_op(silu: bool, batch_stats: bool) -> ops.Custom:
    """``(x, gamma, beta, stats, eps) -> act(gamma * (x - mean) / sqrt(var + eps) + beta)`` with its ``bprop``.

    ``stats`` is ``(2, C)`` [mean, variance] and ``eps`` a ``(1,)`` tensor.  With ``batch_stats`` the statistics are
    those of ``x`` itself and the backward differentiates through them (the caller passes them through
    ``stop_gradient``: their gradient is part of ``dx`` here); otherwise they are constants (moving statistics).
    """
    grads = bn_act_grad(silu, batch_stats)

    def bprop(x, gamma, beta, stats, eps, out, dout):
        return grads(x, gamma, beta, stats, eps, dout)

    return aot_op(_bn_kernel_name(silu), out_shape=like(0), out_dtype=like(0), bprop=bprop)


class _BatchStatsKernel(Float32Cell):
    """``(x, gamma, beta) -> (y, stats)`` on the batch statistics (float32 under mixed precision)."""

    def __init__(self, eps: Tensor, silu: bool) -> None:
        super().__init__()
        self.eps = eps
        self.stats = bn_stats_op()
        self.op = bn_act_op(silu, True)

    def construct(self, x, gamma, beta):
        stats = ops.stop_gradient(self.stats(x))
        return self.op(x, gamma, beta, stats, self.eps), stats


class _FixedStatsKernel(Float32Cell):
    """``(x, gamma, beta, mean, variance) -> y`` on fixed statistics (float32 under mixed precision)."""

    def __init__(self, eps: Tensor, silu: bool) -> None:
        super().__init__()
        self.eps = eps
        self.op = bn_act_op(silu, False)

    def construct(self, x, gamma, beta, mean, variance):
        return self.op(x, gamma, beta, ops.stack((mean, variance)), self.eps)


class _Kernels(nn.Cell):
    """The training and eval kernel cells of one layer (no parameters)."""

    def __init__(self, eps: float, silu: bool) -> None:
        super().__init__()
        eps_tensor = Tensor([eps], ms.float32)
        self.batch = _BatchStatsKernel(eps_tensor, silu)
        self.fixed = _FixedStatsKernel(eps_tensor, silu)


class BatchNormAct2d(KernelSwitch, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` followed by an optional SiLU, computed by CPU kernels when available.

    A drop-in ``nn.BatchNorm2d``: the same parameters (``gamma``, ``beta``, ``moving_mean``, ``moving_variance``),
    arguments and momentum convention (``momentum`` is the fraction of the old moving statistics kept; the update
    uses the unbiased batch variance), ``use_batch_statistics`` and ``set_train`` behave the same, and code that
    looks for ``nn.BatchNorm2d`` layers (freezing, ``norm_eval``, BN calibration that swaps ``bn_train``, AMP O2's
    float32 list) finds it.  The kernels compute in float32 under mixed precision.  Without the kernels (other
    devices, ``EFFNET_MM_KERNELS=0``, :func:`effnet_mm.ops.set_kernels`) it is ``nn.BatchNorm2d`` then ``nn.SiLU``.

    Args:
        num_features: channels.
        eps: added to the variance.
        momentum: fraction of the old moving statistics kept at each update (MindSpore's convention).
        act: apply SiLU (swish) after the normalisation.
        **kwargs: further ``nn.BatchNorm2d`` arguments (``affine``, ``*_init``, ``use_batch_statistics``).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.9, act: bool = False,
                 **kwargs) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, **kwargs)
        self.silu = bool(act)
        self.act = nn.SiLU() if act else None  # the path without kernels
        self.use_kernel = False
        self.kernel = None
        self.enable_kernel(True)

    def make_kernel(self) -> nn.Cell:
        return _Kernels(self.eps, self.silu)

    def construct(self, x):
        if not self.use_kernel:
            x = super().construct(x)
            return x if self.act is None else self.act(x)
        if self.use_batch_statistics is False or (self.use_batch_statistics is None and not self.training):
            return self.kernel.fixed(x, self.gamma, self.beta, self.moving_mean, self.moving_variance)
        y, stats = self.kernel.batch(x, self.gamma, self.beta)
        # nn.BatchNorm2d's update.  The batch weight (1 - momentum) is read from the training primitive when
        # possible (PyNative), so code that swaps ``bn_train`` (e.g. BN calibration with momentum 1) keeps working.
        weight = getattr(self.bn_train, 'momentum', self.momentum)
        count = x.shape[0] * x.shape[2] * x.shape[3]
        batch_mean, batch_variance = _unstack(stats)
        variance = batch_variance * (count / max(count - 1, 1))
        mean = self.moving_mean * (1.0 - weight) + batch_mean * weight
        variance = self.moving_variance * (1.0 - weight) + variance * weight
        y = ops.depend(y, ops.assign(self.moving_mean, mean))
        return ops.depend(y, ops.assign(self.moving_variance, variance))

    def extend_repr(self) -> str:
        return f'{super().extend_repr()}, act={"SiLU" if self.silu else None}, use_kernel={self.use_kernel}'


def on_moving_stats_kernel(bn, silu: bool) -> bool:
    """Whether ``bn`` is a :class:`BatchNormAct2d` with (``silu``) or without SiLU that computes on its kernel with the
    moving statistics unless training: the layers the eval-mode fusions (``DepthwiseStage``, ``MBConvInference``,
    ``ConvBNSiLUInference``) may stand in for."""
    return (isinstance(bn, BatchNormAct2d) and bn.silu == silu and bn.use_kernel
            and bn.use_batch_statistics is not True)


class FusedBatchNormAct(_FixedStatsKernel):
    """Deprecated: :class:`BatchNormAct2d` is the BatchNorm (+ SiLU) layer now (``ConvBNAct`` uses it).

    Kept with its former interface: calling it is BN (+ SiLU) on given statistics,
    ``(x, gamma, beta, moving_mean, moving_variance) -> y``; ``batch_stats(x, gamma, beta)`` is the training form,
    ``-> (y, mean, unbiased variance)``.
    """

    def __init__(self, eps: float, silu: bool) -> None:
        import warnings

        warnings.warn('effnet_mm.ops.FusedBatchNormAct is deprecated; use effnet_mm.ops.BatchNormAct2d',
                      DeprecationWarning, stacklevel=2)
        eps_tensor = Tensor([float(eps)], ms.float32)
        super().__init__(eps_tensor, bool(silu))
        self.batch_stats = _DeprecatedBatchStats(eps_tensor, bool(silu))


class _DeprecatedBatchStats(_BatchStatsKernel):
    """``FusedBatchNormAct.batch_stats``: ``(x, gamma, beta) -> (y, mean, unbiased variance)``."""

    def construct(self, x, gamma, beta):
        y, stats = super().construct(x, gamma, beta)
        count = x.shape[0] * x.shape[2] * x.shape[3]
        return y, stats[0], stats[1] * (count / max(count - 1, 1))
