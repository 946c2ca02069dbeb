"""The inference form of an MBConv block's depthwise stage on one kernel (``conv.cc``: ``dw_bn_silu_eval``).

In an eval forward most of an MBConv block's memory traffic is its expanded activations: the expansion conv's
BN + SiLU pass reads and writes them, the depthwise conv reads them, its BN + SiLU pass reads and writes its output,
the SE reads that once more for its mean and then again for its gated product.  :class:`DepthwiseStage` does all of
it in one kernel: the expansion BN + SiLU is applied while the depthwise conv copies its input into its padded
buffer, the depthwise BN + SiLU and the mean while each output plane is still in cache, and the SE (its two small
1x1 convs, the sigmoid and the product) per image once that image's planes are done, before they leave the cache.
Both BatchNorms use their moving statistics, so this is the eval path only; it is differentiable (the backward
recomputes the intermediate tensors with the separate kernels).
"""
from __future__ import annotations

import functools
from typing import Callable

import mindspore as ms
from mindspore import Tensor, ops

from .batchnorm import bn_act_grad, bn_act_op
from .conv import conv_grad, conv_op, conv_out_shape
from .elementwise import sigmoid_gate_grads, silu_grad_op, silu_op
from .kernel_cell import Float32Cell, KernelSwitch, aot_op
from .spatial_mean import spatial_mean_grad


def _se_grads() -> Callable:
    """``(u, pooled, se, dout) -> (du, dpooled, d se)``: the SE excitation ``u * sigmoid(w2 silu(w1 pooled + b1) +
    b2)`` differentiated, with ``se = (w1 (R, C, 1, 1), b1 (R), w2 (C, R, 1, 1), b2 (C))`` and ``pooled`` the mean of
    ``u``; the two 1x1 convs on (N, C, 1, 1) are matrix products here."""
    silu, silu_grad = silu_op(), silu_grad_op()
    gate_grads = sigmoid_gate_grads()
    matmul_t = ops.MatMul(transpose_b=True)
    t_matmul = ops.MatMul(transpose_a=True)

    def grads(u, pooled, se, dout):
        n, c = pooled.shape[0], pooled.shape[1]
        w1, w2 = se[0].reshape(se[0].shape[0], c), se[2].reshape(c, se[2].shape[1])
        p = pooled.reshape(n, c)
        a = matmul_t(p, w1) + se[1]
        h = silu(a)
        s = matmul_t(h, w2) + se[3]
        du, ds = gate_grads(u, s.reshape(n, c, 1, 1), dout)
        ds = ds.reshape(n, c)
        da = silu_grad(ops.matmul(ds, w2), a)
        d_se = (t_matmul(da, p).reshape(se[0].shape), da.sum(0), t_matmul(ds, h).reshape(se[2].shape), ds.sum(0))
        return du, ops.matmul(da, w1).reshape(n, c, 1, 1), d_se

    return grads


@functools.cache
def depthwise_stage_grads(stride: int, padding: str, expanded: bool, se: bool) -> Callable:
    """``(x, w, bn, pre_bn, se, out, dy, dpooled) -> (dx, dw, d bn, d pre_bn, d se)`` with bn = (gamma, beta,
    stats, eps), ``se`` the SE conv parameters (or ``()``) and ``out`` the stage's outputs (y, pooled)."""
    act = bn_act_op(True, False)
    conv = conv_op('depthwise', stride, padding)
    bn_grads = bn_act_grad(True, False)
    conv_grads = conv_grad('depthwise', stride, padding)
    mean_grad = spatial_mean_grad()
    se_grads = _se_grads() if se else None

    # Written without starred expressions: bprops are parsed as graph code.
    def grads(x, w, bn, pre_bn, se_params, out, dy, dpooled):
        inner = act(x, pre_bn[0], pre_bn[1], pre_bn[2], pre_bn[3]) if expanded else x
        z = conv(inner, w)
        u = out[0]
        d_se = ()
        if se:  # out[0] is gated: the product's input again
            u = act(z, bn[0], bn[1], bn[2], bn[3])
            dy, d_squeeze, d_se = se_grads(u, out[1], se_params, dy)
            dpooled = dpooled + d_squeeze
        dy = dy + mean_grad(dpooled, u)
        d_bn = bn_grads(z, bn[0], bn[1], bn[2], bn[3], dy)
        d_inner, dw = conv_grads(inner, w, d_bn[0])
        if not expanded:
            return d_inner, dw, d_bn[1:], (), d_se
        d_pre = bn_grads(x, pre_bn[0], pre_bn[1], pre_bn[2], pre_bn[3], d_inner)
        return d_pre[0], dw, d_bn[1:], d_pre[1:], d_se

    return grads


@functools.cache
def depthwise_stage_op(stride: int, padding: str, expanded: bool, se: bool = False) -> ops.Custom:
    """``(x, w, gamma, beta, stats, eps[, pre_gamma, pre_beta, pre_stats, pre_eps][, w1, b1, w2, b2]) -> (y, pooled)``
    with its bprop.

    ``u = silu(bn(depthwise(silu(pre_bn(x)), w)))`` (``pre_bn`` only when ``expanded``), ``pooled`` its mean over
    (H, W), ``(N, C, 1, 1)``, and ``y = u`` or with ``se`` the SE excitation ``u * sigmoid(w2 silu(w1 pooled + b1) +
    b2)`` (``w1`` (R, C, 1, 1), ``w2`` (C, R, 1, 1): the SE's 1x1 convs); ``stats`` are ``(2, C)`` [mean, variance],
    ``eps`` ``(1,)`` tensors.
    """
    name = (f'effnet_dw{"_pre" if expanded else ""}_bn_silu{"_se" if se else ""}_eval_s{stride}'
            f'{"_sym" if padding == "symmetric" else ""}')
    grads = depthwise_stage_grads(stride, padding, expanded, se)
    conv_shape = conv_out_shape(stride, padding)

    def out_shape(x, w, *_):
        return conv_shape(x, w), (x[0], x[1], 1, 1)

    def out_dtype(x, *_):
        return x, x

    # One bprop per input list: bprops are parsed as graph code, which takes no *args.
    if expanded and se:
        def bprop(x, w, gamma, beta, stats, eps, pre_gamma, pre_beta, pre_stats, pre_eps, w1, b1, w2, b2, out, dout):
            dx, dw, d_bn, d_pre, d_se = grads(x, w, (gamma, beta, stats, eps),
                                              (pre_gamma, pre_beta, pre_stats, pre_eps), (w1, b1, w2, b2), out,
                                              dout[0], dout[1])
            return (dx, dw) + d_bn + d_pre + d_se
    elif expanded:
        def bprop(x, w, gamma, beta, stats, eps, pre_gamma, pre_beta, pre_stats, pre_eps, out, dout):
            dx, dw, d_bn, d_pre, _ = grads(x, w, (gamma, beta, stats, eps), (pre_gamma, pre_beta, pre_stats, pre_eps),
                                           (), out, dout[0], dout[1])
            return (dx, dw) + d_bn + d_pre
    elif se:
        def bprop(x, w, gamma, beta, stats, eps, w1, b1, w2, b2, out, dout):
            dx, dw, d_bn, _, d_se = grads(x, w, (gamma, beta, stats, eps), (), (w1, b1, w2, b2), out, dout[0],
                                          dout[1])
            return (dx, dw) + d_bn + d_se
    else:
        def bprop(x, w, gamma, beta, stats, eps, out, dout):
            dx, dw, d_bn, _, _ = grads(x, w, (gamma, beta, stats, eps), (), (), out, dout[0], dout[1])
            return (dx, dw) + d_bn

    return aot_op(name, out_shape=out_shape, out_dtype=out_dtype, bprop=bprop)


class DepthwiseStage(KernelSwitch, Float32Cell):
    """The eval-mode depthwise stage of an MBConv block on one kernel (see the module docstring).

    ``(x, weight, gamma, beta, mean, variance[, pre_gamma, pre_beta, pre_mean, pre_variance][, se_w1, se_b1, se_w2,
    se_b2]) -> (y, pooled)``: the depthwise conv's weight and BatchNorm, with ``expanded`` the expansion conv's
    BatchNorm, whose conv output is ``x``, and with ``se`` the SE's two 1x1 convs, whose excitation ``y`` then has
    applied (``pooled`` is the mean before it).  It has no parameters and no MindSpore-ops path of its own: the block
    calls it only while ``use_kernel`` is set and runs its separate layers otherwise (``effnet_mm.ops.set_kernels``
    switches it with every other kernel layer).

    Example (built by :class:`~effnet_mm.models.backbones.mbconv.MBConv`, not from a config)::

        stage = DepthwiseStage(stride=2, padding='same', expanded=True, eps=1e-3, se=True)

    Args:
        stride: depthwise stride (1 or 2).
        padding: ``'same'`` (TF) or ``'symmetric'`` (``k // 2``), as the depthwise conv's kernel padding.
        expanded: the block has an expansion conv whose BN + SiLU is applied to the input.
        eps: epsilon of the depthwise conv's BatchNorm.
        pre_eps: epsilon of the expansion conv's BatchNorm (with ``expanded``).
        se: the stage applies the block's SE excitation.
    """

    def __init__(self, stride: int, padding: str, expanded: bool, eps: float, pre_eps: float = 1e-3,
                 se: bool = False) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.expanded = expanded
        self.se = se
        self.eps = Tensor([eps], ms.float32)
        self.pre_eps = Tensor([pre_eps], ms.float32)
        self.use_kernel = False
        self.kernel = None
        self.enable_kernel(True)

    def make_kernel(self) -> ops.Custom:
        return depthwise_stage_op(self.stride, self.padding, self.expanded, self.se)

    def construct(self, x, weight, gamma, beta, mean, variance, pre_gamma=None, pre_beta=None, pre_mean=None,
                  pre_variance=None, se_w1=None, se_b1=None, se_w2=None, se_b2=None):
        stats = ops.stack((mean, variance))
        if not self.expanded:
            if self.se:
                return self.kernel(x, weight, gamma, beta, stats, self.eps, se_w1, se_b1, se_w2, se_b2)
            return self.kernel(x, weight, gamma, beta, stats, self.eps)
        pre_stats = ops.stack((pre_mean, pre_variance))
        if self.se:
            return self.kernel(x, weight, gamma, beta, stats, self.eps, pre_gamma, pre_beta, pre_stats, self.pre_eps,
                               se_w1, se_b1, se_w2, se_b2)
        return self.kernel(x, weight, gamma, beta, stats, self.eps, pre_gamma, pre_beta, pre_stats, self.pre_eps)

    def extend_repr(self) -> str:
        return (f'stride={self.stride}, padding={self.padding}, expanded={self.expanded}, se={self.se}, '
                f'use_kernel={self.use_kernel}')
