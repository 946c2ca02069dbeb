"""SiLU and the SE sigmoid gate on CPU kernels (``elementwise.cc``), forward and backward.

MindSpore's CPU graph runs SiLU as Sigmoid + Mul and its gradient as several more elementwise passes, and the
gradient of the SE product ``x * gate`` (gate ``(N, C, 1, 1)``) through a ReduceSum over (H, W) that is as slow as
ReduceMean; here each is one streaming pass.  MindSpore 2.10's CPU ``Sigmoid`` is moreover a low-precision
approximation (~8e-7 abs error against float64, float32 rounding is ~6e-8), so the SE gate computes its sigmoid in
the kernel (glibc ``expf``, ~2 ulp) fused into the product.
"""
from __future__ import annotations

import functools
from typing import Callable

from mindspore import nn, ops

from .kernel_cell import KernelCell, aot_op, like


@functools.cache
def silu_grad_op() -> ops.Custom:
    """``(dout, x) -> dout * silu'(x)``."""
    return aot_op('effnet_silu_grad', out_shape=like(1), out_dtype=like(1))


@functools.cache
def silu_op() -> ops.Custom:
    """``x * sigmoid(x)`` with its ``bprop``."""
    grad = silu_grad_op()

    def bprop(x, out, dout):
        return (grad(dout, x), )

    return aot_op('effnet_silu', out_shape=like(0), out_dtype=like(0), bprop=bprop)


@functools.cache
def sigmoid_gate_grads() -> Callable:
    """``(x, s, dout) -> (dx, ds)``: the gradients of ``x * sigmoid(s)`` (``s`` of shape (N, C, 1, 1))."""
    grad_s = aot_op('effnet_sigmoid_gate_grad_s', out_shape=like(2), out_dtype=like(2))
    gate = aot_op('effnet_sigmoid_gate', out_shape=like(0), out_dtype=like(0))

    def grads(x, s, dout):
        # d/dx is the same gated product applied to dout; d/ds = sum_hw(dout * x) * sigmoid(s) * (1 - sigmoid(s)),
        # with sigmoid' recomputed from ``s`` (N * C values) in double, accurate where a float sigmoid rounds to 1.
        return gate(dout, s), grad_s(dout, x, s)

    return grads


@functools.cache
def sigmoid_gate_op() -> ops.Custom:
    """``x * sigmoid(s)`` for ``x`` (N, C, H, W) and ``s`` (N, C, 1, 1), with its ``bprop``."""
    grads = sigmoid_gate_grads()

    def bprop(x, s, out, dout):
        return grads(x, s, dout)

    return aot_op('effnet_sigmoid_gate', out_shape=like(0), out_dtype=like(0), bprop=bprop)


class SiLU(KernelCell):
    """Swish ``x * sigmoid(x)``: CPU kernel when available, else ``nn.SiLU``."""

    def __init__(self) -> None:
        super().__init__()
        self.fallback = nn.SiLU()

    def make_kernel(self):
        return silu_op()

    def construct(self, x):
        if self.use_kernel:
            return self.kernel(x)
        return self.fallback(x)


class SigmoidGate(KernelCell):
    """SE excitation ``x * sigmoid(s)`` with ``s`` of shape (N, C, 1, 1): one fused kernel when available.

    The kernel's sigmoid is accurate to ~2 ulp in float32, where MindSpore's CPU ``Sigmoid`` errs by up to ~8e-7;
    the fallback (``nn.Sigmoid`` then a broadcast ``Mul``) is what MindSpore computes without the kernels.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fallback = nn.Sigmoid()

    def make_kernel(self):
        return sigmoid_gate_op()

    def construct(self, x, s):
        if self.use_kernel:
            return self.kernel(x, s)
        return x * self.fallback(s)
