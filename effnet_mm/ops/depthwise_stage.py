"""The inference form of an MBConv block's depthwise stage on one kernel (``conv.cc``: ``dw_bn_silu_eval``).

In an eval forward most of an MBConv block's memory traffic is its expanded activations: the expansion conv's
BN + SiLU pass reads and writes them, the depthwise conv reads them, its BN + SiLU pass reads and writes its output,
and the SE reads that once more for its mean.  :class:`DepthwiseStage` does all of it in one kernel: the expansion
BN + SiLU is applied while the depthwise conv copies its input into its padded buffer, the depthwise BN + SiLU and the
mean while each output plane is still in cache.  Both BatchNorms use their moving statistics, so this is the eval
path only; it is differentiable (the backward recomputes the intermediate tensors with the separate kernels).
"""
from __future__ import annotations

import functools
from typing import Callable

import mindspore as ms
from mindspore import Tensor, ops

from .batchnorm import bn_act_grad, bn_act_op
from .conv import conv_grad, conv_op, conv_out_shape
from .kernel_cell import Float32Cell, KernelSwitch, aot_op
from .spatial_mean import spatial_mean_grad


def _stage_grads(stride: int, padding: str, expanded: bool) -> Callable:
    """``(x, w, bn, pre_bn, y, dy, dpooled) -> (dx, dw, d bn, d pre_bn)`` with bn = (gamma, beta, stats, eps)."""
    pre_act = bn_act_op(True, False)
    conv = conv_op('depthwise', stride, padding)
    bn_grads = bn_act_grad(True, False)
    conv_grads = conv_grad('depthwise', stride, padding)
    mean_grad = spatial_mean_grad()

    # Written without starred expressions: bprops are parsed as graph code.
    def grads(x, w, bn, pre_bn, y, dy, dpooled):
        inner = pre_act(x, pre_bn[0], pre_bn[1], pre_bn[2], pre_bn[3]) if expanded else x
        dy = dy + mean_grad(dpooled, y)
        d_bn = bn_grads(conv(inner, w), bn[0], bn[1], bn[2], bn[3], dy)
        d_inner, dw = conv_grads(inner, w, d_bn[0])
        if not expanded:
            return d_inner, dw, d_bn[1:], ()
        d_pre = bn_grads(x, pre_bn[0], pre_bn[1], pre_bn[2], pre_bn[3], d_inner)
        return d_pre[0], dw, d_bn[1:], d_pre[1:]

    return grads


@functools.cache
def depthwise_stage_op(stride: int, padding: str, expanded: bool) -> ops.Custom:
    """``(x, w, gamma, beta, stats, eps[, pre_gamma, pre_beta, pre_stats, pre_eps]) -> (y, pooled)`` with its bprop.

    ``y = silu(bn(depthwise(silu(pre_bn(x)), w)))`` (``pre_bn`` only when ``expanded``) and ``pooled`` its mean over
    (H, W), ``(N, C, 1, 1)``; ``stats`` are ``(2, C)`` [mean, variance], ``eps`` ``(1,)`` tensors.
    """
    name = f'effnet_dw{"_pre" if expanded else ""}_bn_silu_eval_s{stride}{"_sym" if padding == "symmetric" else ""}'
    grads = _stage_grads(stride, padding, expanded)
    conv_shape = conv_out_shape(stride, padding)

    def out_shape(x, w, *_):
        return conv_shape(x, w), (x[0], x[1], 1, 1)

    def out_dtype(x, *_):
        return x, x

    if expanded:
        def bprop(x, w, gamma, beta, stats, eps, pre_gamma, pre_beta, pre_stats, pre_eps, out, dout):
            dx, dw, d_bn, d_pre = grads(x, w, (gamma, beta, stats, eps), (pre_gamma, pre_beta, pre_stats, pre_eps),
                                        out[0], dout[0], dout[1])
            return (dx, dw) + d_bn + d_pre
    else:
        def bprop(x, w, gamma, beta, stats, eps, out, dout):
            dx, dw, d_bn, _ = grads(x, w, (gamma, beta, stats, eps), (), out[0], dout[0], dout[1])
            return (dx, dw) + d_bn

    return aot_op(name, out_shape=out_shape, out_dtype=out_dtype, bprop=bprop)


class DepthwiseStage(KernelSwitch, Float32Cell):
    """The eval-mode depthwise stage of an MBConv block on one kernel (see the module docstring).

    ``(x, weight, gamma, beta, mean, variance[, pre_gamma, pre_beta, pre_mean, pre_variance]) -> (y, pooled)``: the
    depthwise conv's weight and BatchNorm, and with ``expanded`` the expansion conv's BatchNorm, whose conv output is
    ``x``.  It has no parameters and no MindSpore-ops path of its own: the block calls it only while
    ``use_kernel`` is set and runs its separate layers otherwise (``effnet_mm.ops.set_kernels`` switches it with
    every other kernel layer).

    Args:
        stride: depthwise stride (1 or 2).
        padding: ``'same'`` (TF) or ``'symmetric'`` (``k // 2``), as the depthwise conv's kernel padding.
        expanded: the block has an expansion conv whose BN + SiLU is applied to the input.
        eps: epsilon of the depthwise conv's BatchNorm.
        pre_eps: epsilon of the expansion conv's BatchNorm (with ``expanded``).
    """

    def __init__(self, stride: int, padding: str, expanded: bool, eps: float, pre_eps: float = 1e-3) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.expanded = expanded
        self.eps = Tensor([eps], ms.float32)
        self.pre_eps = Tensor([pre_eps], ms.float32)
        self.use_kernel = False
        self.kernel = None
        self.enable_kernel(True)

    def make_kernel(self) -> ops.Custom:
        return depthwise_stage_op(self.stride, self.padding, self.expanded)

    def construct(self, x, weight, gamma, beta, mean, variance, pre_gamma=None, pre_beta=None, pre_mean=None,
                  pre_variance=None):
        stats = ops.stack((mean, variance))
        if self.expanded:
            return self.kernel(x, weight, gamma, beta, stats, self.eps, pre_gamma, pre_beta,
                               ops.stack((pre_mean, pre_variance)), self.pre_eps)
        return self.kernel(x, weight, gamma, beta, stats, self.eps)

    def extend_repr(self) -> str:
        return (f'stride={self.stride}, padding={self.padding}, expanded={self.expanded}, '
                f'use_kernel={self.use_kernel}')
