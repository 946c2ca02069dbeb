"""BatchNorm (+ SiLU) of ``ConvBNAct`` on one-pass CPU kernels, in eval mode and in training mode.

oneDNN's NCHW batch-norm kernel (``ncsp_bnorm``) took ~40 % of a B0 inference step and ~30 % of a training step on
CPU, and SiLU costs two more passes forward and several backward.  Per channel, BN followed by the activation is
``act(x * scale + shift)``: with the moving statistics ``scale = gamma / sqrt(var + eps)`` and
``shift = beta - mean * scale``; in training the batch mean and (biased) variance come from one statistics kernel
and MindSpore's autodiff composes the exact BN gradient from the kernels' ``bprop``s (through ``x`` directly, and
through the statistics).  The moving-statistics update is done by the caller (see ``ConvBNAct``) with the unbiased
variance, like ``nn.BatchNorm2d``.
"""
from __future__ import annotations

import functools

from mindspore import ops

from .build import library_path
from .fast_conv import Float32Cell
from .kernel_cell import KernelCell


@functools.cache
def affine_act_op(silu: bool) -> ops.Custom:
    """``act(x * scale[c] + shift[c])`` for NCHW ``x`` and ``(C,)`` scale/shift, with its ``bprop``."""
    lib = str(library_path())
    name = 'effnet_affine_silu' if silu else 'effnet_affine'
    grad_x = ops.Custom(f'{lib}:{name}_grad', out_shape=lambda dy, x, s, b: x, out_dtype=lambda dy, x, s, b: x,
                        func_type='aot')
    grad_params = ops.Custom(f'{lib}:{name}_grad_params', out_shape=lambda dy, x, s, b: (2, s[0]),
                             out_dtype=lambda dy, x, s, b: x, func_type='aot')

    def bprop(x, scale, shift, out, dout):
        sums = grad_params(dout, x, scale, shift)  # [d scale, d shift]
        return grad_x(dout, x, scale, shift), sums[0], sums[1]

    return ops.Custom(f'{lib}:{name}', out_shape=lambda x, s, b: x, out_dtype=lambda x, s, b: x, func_type='aot',
                      bprop=bprop)


@functools.cache
def batch_stats_op() -> ops.Custom:
    """``x -> (2, C)``: batch mean and biased variance over (N, H, W), with its ``bprop``."""
    lib = str(library_path())
    grad = ops.Custom(f'{lib}:effnet_bn_stats_grad', out_shape=lambda d, x, s: x, out_dtype=lambda d, x, s: x,
                      func_type='aot')

    def bprop(x, out, dout):
        return (grad(dout, x, out), )

    return ops.Custom(f'{lib}:effnet_bn_stats', out_shape=lambda x: (2, x[1]), out_dtype=lambda x: x,
                      func_type='aot', bprop=bprop)


class BatchStatsBatchNormAct(Float32Cell):
    """Training-mode BN (+ SiLU) on the batch statistics: ``(x, gamma, beta) -> (y, mean, unbiased variance)``.

    The caller updates the moving statistics from the returned (gradient-free) mean and variance.
    """

    def __init__(self, eps: float, silu: bool) -> None:
        super().__init__()
        self.eps = float(eps)
        self.stats = batch_stats_op()
        self.op = affine_act_op(bool(silu))

    def construct(self, x, gamma, beta):
        stats = self.stats(x)
        mean = stats[0]
        variance = stats[1]
        scale = gamma * ops.rsqrt(variance + self.eps)
        y = self.op(x, scale, beta - mean * scale)
        count = x.shape[0] * x.shape[2] * x.shape[3]
        unbiased = ops.stop_gradient(variance) * (count / max(count - 1, 1))
        return y, ops.stop_gradient(mean), unbiased


class FusedBatchNormAct(KernelCell):
    """BatchNorm followed by SiLU (or nothing) on one-pass kernels; no parameters of its own.

    Calling the cell runs the moving-statistics (eval) form with the BN layer's parameters:
    ``(x, gamma, beta, moving_mean, moving_variance) -> act(bn(x))``.  ``self.batch_stats`` is the training form
    (:class:`BatchStatsBatchNormAct`).  Both equal MindSpore's BN (+ ``nn.SiLU``) up to float32 rounding.

    Args:
        eps: the BatchNorm epsilon.
        silu: apply SiLU after the normalisation.
    """

    def __init__(self, eps: float, silu: bool) -> None:
        self.eps = float(eps)
        self.silu = bool(silu)
        super().__init__()

    def make_op(self):
        self.batch_stats = BatchStatsBatchNormAct(self.eps, self.silu)
        return affine_act_op(self.silu)

    def construct(self, x, gamma, beta, mean, variance):
        scale = gamma * ops.rsqrt(variance + self.eps)
        return self.op(x, scale, beta - mean * scale)
