"""The inference form of a whole MBConv block (with SE) on one kernel (``conv.cc``: ``mbconv_eval``).

:class:`~effnet_mm.ops.depthwise_stage.DepthwiseStage` keeps an eval block's depthwise stage and SE in one pass, but
its input (the expansion conv's output) and its output (the projection conv's input) are still full tensors that
oneDNN's 1x1 convs write to and read from memory.  On the large maps of the first stages those convs are
memory-bound: one image's 1x1 conv from cache ran 1.25-2.8x faster per image than a batch-32 call (B0 shapes from
112x112 down to 28x28; the same on the 14x14 maps, slower on 7x7, where one image's 49 columns fill one and a bit
48-column GEMM panels).  :class:`MBConvInference` runs the whole block per image instead: the expansion conv
(``gemm.h``) a block of channels at a time into a buffer the stage reads at once, the SE, then the projection conv
from the cache with its BatchNorm and the residual in its epilogue.  Every BatchNorm uses its moving statistics, so
this is the eval path only; it is differentiable (the backward recomputes the intermediate tensors and uses the
separate layers' gradients).

:class:`StemMBConvInference` does the same for the network's first block together with the stem before it (the
stem's dense conv + BN + SiLU a block of channels at a time as the block's input), so the largest activation of the
network, the stem's output, never goes to memory.
"""
from __future__ import annotations

import functools
from typing import Callable

import mindspore as ms
from mindspore import Tensor, ops

from .batchnorm import bn_act_grad, bn_act_op
from .conv import conv_grad, conv_op, conv_out_shape, pointwise_grads
from .depthwise_stage import depthwise_stage_grads, depthwise_stage_op
from .kernel_cell import Float32Cell, KernelSwitch, aot_op, kernel_threads

#: Smallest H * W of a block's input for which the block runs on :class:`MBConvInference` (28 x 28; measured on B0).
BLOCK_MIN_PIXELS = 784


def _block_grads(stride: int, padding: str, expanded: bool, residual: bool, channels: tuple) -> Callable:
    """``(x, w_e, w_dw, bn, pre_bn, se, w_p, proj_bn, dout) -> (dx, dw_e, dw_dw, d bn, d pre_bn, d se, dw_p,
    d proj_bn)`` with channels = (in, expanded, out); the BN tuples are (gamma, beta, stats, eps)."""
    in_channels, hidden, out_channels = channels
    stage = depthwise_stage_op(stride, padding, expanded, True)
    stage_grads = depthwise_stage_grads(stride, padding, expanded, True)
    expand = ops.Conv2D(out_channel=hidden, kernel_size=(1, 1))
    project = ops.Conv2D(out_channel=out_channels, kernel_size=(1, 1))
    expand_grads = pointwise_grads(in_channels, hidden)
    project_grads = pointwise_grads(hidden, out_channels)
    bn_grads = bn_act_grad(False, False)

    # Written without starred expressions: bprops are parsed as graph code.
    def grads(x, w_e, w_dw, bn, pre_bn, se, w_p, proj_bn, dout):
        if expanded:
            e = expand(x, w_e)
            y, pooled = stage(e, w_dw, bn[0], bn[1], bn[2], bn[3], pre_bn[0], pre_bn[1], pre_bn[2], pre_bn[3], se[0],
                              se[1], se[2], se[3])
        else:
            e = x
            y, pooled = stage(e, w_dw, bn[0], bn[1], bn[2], bn[3], se[0], se[1], se[2], se[3])
        z = project(y, w_p)
        d_proj = bn_grads(z, proj_bn[0], proj_bn[1], proj_bn[2], proj_bn[3], dout)
        dy, dw_p = project_grads(y, w_p, d_proj[0])
        de, dw_dw, d_bn, d_pre, d_se = stage_grads(e, w_dw, bn, pre_bn, se, (y, pooled), dy, ops.zeros_like(pooled))
        dx, dw_e = de, ()
        if expanded:
            dx, dw_e = expand_grads(x, w_e, de)
            dw_e = (dw_e, )
        if residual:
            dx = dx + dout
        return dx, dw_e, dw_dw, d_bn, d_pre, d_se, dw_p, d_proj[1:]

    return grads


@functools.cache
def mbconv_inference_op(stride: int, padding: str, expanded: bool, residual: bool, channels: tuple) -> ops.Custom:
    """``(x, [w_e,] w_dw, gamma, beta, stats, eps, [pre_gamma, pre_beta, pre_stats, pre_eps,] w1, b1, w2, b2, w_p,
    proj_gamma, proj_beta, proj_stats, proj_eps) -> out`` with its bprop (bracketed: with ``expanded``).

    ``out = proj_bn(conv1x1(y, w_p)) (+ x with residual)`` where ``y`` is the gated output of
    :func:`~effnet_mm.ops.depthwise_stage.depthwise_stage_op` (with SE) on ``conv1x1(x, w_e)`` (or ``x``);
    ``channels`` = (in, expanded, out) channels.
    """
    name = (f'effnet_mbconv_eval{"_res" if residual else ""}_s{stride}'
            f'{"_sym" if padding == "symmetric" else ""}')
    grads = _block_grads(stride, padding, expanded, residual, channels)
    conv_shape = conv_out_shape(stride, padding)

    def out_dtype(x, *_):
        return x

    if expanded:
        def out_shape(x, w_e, w_dw, *rest):
            return (x[0], rest[-5][0]) + conv_shape(x, w_dw)[2:]

        def bprop(x, w_e, w_dw, gamma, beta, stats, eps, pre_gamma, pre_beta, pre_stats, pre_eps, w1, b1, w2, b2, w_p,
                  proj_gamma, proj_beta, proj_stats, proj_eps, out, dout):
            dx, dw_e, dw_dw, d_bn, d_pre, d_se, dw_p, d_proj = grads(
                x, w_e, w_dw, (gamma, beta, stats, eps), (pre_gamma, pre_beta, pre_stats, pre_eps), (w1, b1, w2, b2),
                w_p, (proj_gamma, proj_beta, proj_stats, proj_eps), dout)
            return (dx, ) + dw_e + (dw_dw, ) + d_bn + d_pre + d_se + (dw_p, ) + d_proj
    else:
        def out_shape(x, w_dw, *rest):
            return (x[0], rest[-5][0]) + conv_shape(x, w_dw)[2:]

        def bprop(x, w_dw, gamma, beta, stats, eps, w1, b1, w2, b2, w_p, proj_gamma, proj_beta, proj_stats, proj_eps,
                  out, dout):
            dx, _, dw_dw, d_bn, _, d_se, dw_p, d_proj = grads(
                x, None, w_dw, (gamma, beta, stats, eps), (), (w1, b1, w2, b2), w_p,
                (proj_gamma, proj_beta, proj_stats, proj_eps), dout)
            return (dx, dw_dw) + d_bn + d_se + (dw_p, ) + d_proj

    return aot_op(name, out_shape=out_shape, out_dtype=out_dtype, bprop=bprop)


class MBConvInference(KernelSwitch, Float32Cell):
    """A whole eval-mode MBConv block with SE on one kernel (see the module docstring).

    Called by :class:`~effnet_mm.models.backbones.mbconv.MBConv` with its layers' parameters and moving statistics;
    it has no parameters and no MindSpore-ops path of its own (the block runs its separate layers when
    ``use_kernel`` is off; ``effnet_mm.ops.set_kernels`` switches it with every other kernel layer).

    Example (built by ``MBConv``, not from a config)::

        block = MBConvInference(stride=1, padding='same', channels=(24, 144, 24), eps=(1e-3, 1e-3, 1e-3))

    Args:
        stride: depthwise stride (1 or 2).
        padding: ``'same'`` (TF) or ``'symmetric'`` (``k // 2``), as the depthwise conv's kernel padding.
        channels: (block input, expanded, block output) channels; no expansion conv when the first two are equal.
        eps: epsilons of the (depthwise, expansion, projection) BatchNorms.
    """

    def __init__(self, stride: int, padding: str, channels: tuple, eps: tuple) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.channels = tuple(channels)
        self.expanded = channels[0] != channels[1]
        self.residual = stride == 1 and channels[0] == channels[2]
        self.eps, self.pre_eps, self.proj_eps = (Tensor([value], ms.float32) for value in eps)
        self.min_batch = kernel_threads()  # one image per thread
        self.use_kernel = False
        self.kernel = None
        self.enable_kernel(True)

    def make_kernel(self) -> ops.Custom:
        return mbconv_inference_op(self.stride, self.padding, self.expanded, self.residual, self.channels)

    def applies_to(self, x) -> bool:
        """Whether a block input of this (static) shape runs here: large maps, at least one image per thread."""
        return self.use_kernel and x.shape[2] * x.shape[3] >= BLOCK_MIN_PIXELS and x.shape[0] >= self.min_batch

    def construct(self, x, w_e, w_dw, bn, pre_bn, se, w_p, proj_bn):
        """BN arguments are (gamma, beta, moving_mean, moving_variance); ``se`` is (w1, b1, w2, b2)."""
        stats = ops.stack((bn[2], bn[3]))
        proj_stats = ops.stack((proj_bn[2], proj_bn[3]))
        if self.expanded:
            return self.kernel(x, w_e, w_dw, bn[0], bn[1], stats, self.eps, pre_bn[0], pre_bn[1],
                               ops.stack((pre_bn[2], pre_bn[3])), self.pre_eps, se[0], se[1], se[2], se[3], w_p,
                               proj_bn[0], proj_bn[1], proj_stats, self.proj_eps)
        return self.kernel(x, w_dw, bn[0], bn[1], stats, self.eps, se[0], se[1], se[2], se[3], w_p, proj_bn[0],
                           proj_bn[1], proj_stats, self.proj_eps)

    def extend_repr(self) -> str:
        return (f'stride={self.stride}, padding={self.padding}, channels={self.channels}, '
                f'residual={self.residual}, use_kernel={self.use_kernel}')


def _stem_block_grads(stride: int, padding: str, channels: tuple) -> Callable:
    """``(x, w_s, stem_bn, w_dw, bn, se, w_p, proj_bn, dout) -> (dx, dw_s, d stem_bn, dw_dw, d bn, d se, dw_p,
    d proj_bn)`` of the stem (dense conv + BN + SiLU) followed by a block without expansion; BN tuples as above."""
    stem_conv = conv_op('dense', stride, padding)
    stem_conv_grads = conv_grad('dense', stride, padding)
    stem_act = bn_act_op(True, False)
    stem_bn_grads = bn_act_grad(True, False)
    block_grads = _block_grads(1, 'same', False, False, channels)

    def grads(x, w_s, stem_bn, w_dw, bn, se, w_p, proj_bn, dout):
        z = stem_conv(x, w_s)
        stem_out = stem_act(z, stem_bn[0], stem_bn[1], stem_bn[2], stem_bn[3])
        d_stem_out, _, dw_dw, d_bn, _, d_se, dw_p, d_proj = block_grads(stem_out, None, w_dw, bn, (), se, w_p, proj_bn,
                                                                         dout)
        d_stem = stem_bn_grads(z, stem_bn[0], stem_bn[1], stem_bn[2], stem_bn[3], d_stem_out)
        dx, dw_s = stem_conv_grads(x, w_s, d_stem[0])
        return dx, dw_s, d_stem[1:], dw_dw, d_bn, d_se, dw_p, d_proj

    return grads


@functools.cache
def stem_mbconv_inference_op(stride: int, padding: str, channels: tuple) -> ops.Custom:
    """``(x, w_s, stem_gamma, stem_beta, stem_stats, stem_eps, w_dw, gamma, beta, stats, eps, w1, b1, w2, b2, w_p,
    proj_gamma, proj_beta, proj_stats, proj_eps) -> out`` with its bprop: the stem (a dense conv of this stride and
    padding, BN, SiLU) followed by a block without expansion (stride 1) as :func:`mbconv_inference_op` computes it;
    ``channels`` = (stem output, stem output, block output) channels."""
    name = f'effnet_stem_mbconv_eval_s{stride}{"_sym" if padding == "symmetric" else ""}'
    grads = _stem_block_grads(stride, padding, channels)
    conv_shape = conv_out_shape(stride, padding)

    def out_shape(x, w_s, *rest):
        return (x[0], rest[-5][0]) + conv_shape(x, w_s)[2:]

    def out_dtype(x, *_):
        return x

    def bprop(x, w_s, stem_gamma, stem_beta, stem_stats, stem_eps, w_dw, gamma, beta, stats, eps, w1, b1, w2, b2, w_p,
              proj_gamma, proj_beta, proj_stats, proj_eps, out, dout):
        dx, dw_s, d_stem, dw_dw, d_bn, d_se, dw_p, d_proj = grads(
            x, w_s, (stem_gamma, stem_beta, stem_stats, stem_eps), w_dw, (gamma, beta, stats, eps), (w1, b1, w2, b2),
            w_p, (proj_gamma, proj_beta, proj_stats, proj_eps), dout)
        return (dx, dw_s) + d_stem + (dw_dw, ) + d_bn + d_se + (dw_p, ) + d_proj

    return aot_op(name, out_shape=out_shape, out_dtype=out_dtype, bprop=bprop)


class StemMBConvInference(KernelSwitch, Float32Cell):
    """The eval-mode stem and first MBConv block (with SE, no expansion, stride 1) on one kernel (see the module
    docstring).

    Called by :class:`~effnet_mm.models.backbones.EfficientNet` with the stem's and the first block's parameters and
    moving statistics; it has no parameters of its own (the layers run separately when ``use_kernel`` is off).

    Example (built by ``EfficientNet``, not from a config)::

        stem_block = StemMBConvInference(stride=2, padding='same', kernel_size=3, channels=(32, 32, 16),
                                         eps=(1e-3, 1e-3, 1e-3))

    Args:
        stride: the stem conv's stride.
        padding: ``'same'`` (TF) or ``'symmetric'`` (``k // 2``), as the stem conv's kernel padding.
        kernel_size: the stem conv's kernel size.
        channels: (stem output, stem output, block output) channels.
        eps: epsilons of the (stem, depthwise, projection) BatchNorms.
    """

    def __init__(self, stride: int, padding: str, kernel_size: int, channels: tuple, eps: tuple) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.kernel_size = kernel_size
        self.channels = tuple(channels)
        self.stem_eps, self.eps, self.proj_eps = (Tensor([value], ms.float32) for value in eps)
        self.min_batch = kernel_threads()
        self.out_shape = conv_out_shape(stride, padding)
        self.use_kernel = False
        self.kernel = None
        self.enable_kernel(True)

    def make_kernel(self) -> ops.Custom:
        return stem_mbconv_inference_op(self.stride, self.padding, self.channels)

    def applies_to(self, x) -> bool:
        """Whether an image batch of this (static) shape runs here: as for :class:`MBConvInference` on the stem's
        output."""
        out = self.out_shape(x.shape, (1, 1, self.kernel_size, self.kernel_size))
        return self.use_kernel and out[2] * out[3] >= BLOCK_MIN_PIXELS and x.shape[0] >= self.min_batch

    def construct(self, x, w_s, stem_bn, w_dw, bn, se, w_p, proj_bn):
        """BN arguments are (gamma, beta, moving_mean, moving_variance); ``se`` is (w1, b1, w2, b2)."""
        return self.kernel(x, w_s, stem_bn[0], stem_bn[1], ops.stack((stem_bn[2], stem_bn[3])), self.stem_eps, w_dw,
                           bn[0], bn[1], ops.stack((bn[2], bn[3])), self.eps, se[0], se[1], se[2], se[3], w_p,
                           proj_bn[0], proj_bn[1], ops.stack((proj_bn[2], proj_bn[3])), self.proj_eps)

    def extend_repr(self) -> str:
        return (f'stride={self.stride}, padding={self.padding}, channels={self.channels}, '
                f'use_kernel={self.use_kernel}')
