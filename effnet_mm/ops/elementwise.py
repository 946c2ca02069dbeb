"""Fused SiLU, SE channel scale and SE sigmoid gate on CPU (custom AOT kernels, forward and backward).

MindSpore's CPU graph runs SiLU as Sigmoid + Mul and its gradient as several more elementwise passes, and the
gradient of the SE product ``x * gate`` (gate ``(N, C, 1, 1)``) through a ReduceSum over (H, W) that is as slow as
ReduceMean; here each is one streaming pass.  MindSpore 2.10's CPU ``Sigmoid`` is moreover a low-precision
approximation (~8e-7 abs error against float64, float32 rounding is ~6e-8), so the SE gate computes its sigmoid in
the kernel (glibc ``expf``, ~2 ulp) fused into the product.
"""
from __future__ import annotations

import functools

from mindspore import nn, ops

from .build import library_path
from .kernel_cell import KernelCell


def _like(index: int):
    def pick(*args):
        return args[index]

    return pick


@functools.cache
def silu_grad_op() -> ops.Custom:
    """``(dy, x) -> dy * d silu(x) / dx``."""
    return ops.Custom(f'{library_path()}:effnet_silu_grad', out_shape=_like(1), out_dtype=_like(1), func_type='aot')


@functools.cache
def silu_op() -> ops.Custom:
    """``x * sigmoid(x)`` with its ``bprop``."""
    lib = str(library_path())
    grad = silu_grad_op()

    def bprop(x, out, dout):
        return (grad(dout, x), )

    return ops.Custom(f'{lib}:effnet_silu', out_shape=_like(0), out_dtype=_like(0), func_type='aot', bprop=bprop)


@functools.cache
def channel_scale_op() -> ops.Custom:
    """``x * g`` for ``x`` (N, C, H, W) and ``g`` (N, C, 1, 1), with its ``bprop``."""
    lib = str(library_path())
    grad_g = ops.Custom(f'{lib}:effnet_channel_scale_grad_g', out_shape=_like(2), out_dtype=_like(2),
                        func_type='aot')
    scale = ops.Custom(f'{lib}:effnet_channel_scale', out_shape=_like(0), out_dtype=_like(0), func_type='aot')

    def bprop(x, g, out, dout):
        return scale(dout, g), grad_g(dout, x, g)  # d/dx (x * g) is the same channel scale applied to dout

    return ops.Custom(f'{lib}:effnet_channel_scale', out_shape=_like(0), out_dtype=_like(0), func_type='aot',
                      bprop=bprop)


@functools.cache
def sigmoid_gate_op() -> ops.Custom:
    """``x * sigmoid(s)`` for ``x`` (N, C, H, W) and ``s`` (N, C, 1, 1), with its ``bprop``."""
    lib = str(library_path())
    grad_s = ops.Custom(f'{lib}:effnet_sigmoid_gate_grad_s', out_shape=_like(2), out_dtype=_like(2),
                        func_type='aot')
    gate = ops.Custom(f'{lib}:effnet_sigmoid_gate', out_shape=_like(0), out_dtype=_like(0), func_type='aot')

    def bprop(x, s, out, dout):
        # d/dx is the same gated product applied to dout; d/ds = sum_hw(dout * x) * sigmoid(s) * (1 - sigmoid(s)),
        # with sigmoid' recomputed from ``s`` (N * C values) in double, accurate where a float sigmoid rounds to 1.
        return gate(dout, s), grad_s(dout, x, s)

    return ops.Custom(f'{lib}:effnet_sigmoid_gate', out_shape=_like(0), out_dtype=_like(0), func_type='aot',
                      bprop=bprop)


class SiLU(KernelCell):
    """Swish ``x * sigmoid(x)``: custom kernel when available, else ``nn.SiLU``."""

    def __init__(self) -> None:
        super().__init__()
        self.fallback = nn.SiLU()

    def make_op(self):
        return silu_op()

    def construct(self, x):
        if self.fast_conv:
            return self.op(x)
        return self.fallback(x)


class ChannelScale(KernelCell):
    """``x * g`` with ``g`` of shape (N, C, 1, 1) (the SE excitation): custom kernel when available."""

    def make_op(self):
        return channel_scale_op()

    def construct(self, x, g):
        if self.fast_conv:
            return self.op(x, g)
        return x * g


class SigmoidGate(KernelCell):
    """SE excitation ``x * sigmoid(s)`` with ``s`` of shape (N, C, 1, 1): one fused kernel when available.

    The kernel's sigmoid is accurate to ~2 ulp in float32, where MindSpore's CPU ``Sigmoid`` errs by up to ~8e-7;
    the fallback (``nn.Sigmoid`` then a broadcast ``Mul``) is what MindSpore computes without the kernels.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fallback = nn.Sigmoid()

    def make_op(self):
        return sigmoid_gate_op()

    def construct(self, x, s):
        if self.fast_conv:
            return self.op(x, s)
        return x * self.fallback(s)
