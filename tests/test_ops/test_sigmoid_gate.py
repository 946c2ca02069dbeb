"""The SE sigmoid gate kernel (``SigmoidGate``: ``x * sigmoid(s)``) against float64 and against MindSpore's ops.

MindSpore 2.10's CPU ``Sigmoid`` errs by up to ~8e-7, which dominated the converted-TF logits error, so the value
is checked against float64 with a bound close to float32 rounding, not against MindSpore.  Gradients are checked
over several calls of one compiled function (MindSpore has had gradient bugs that only show from the second call).
"""
import warnings

import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from effnet_mm.models.layers import SqueezeExcitation
from effnet_mm.ops import SigmoidGate, kernels_unavailable_reason

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')

CALLS = 3
#: Float32 rounding alone is up to 3e-8 on (0.5, 1); the kernel may add ~1-2 ulp, MindSpore's Sigmoid adds ~8e-7.
SIGMOID_ATOL = 2e-7


def _sigmoid64(s: np.ndarray) -> np.ndarray:
    s = s.astype(np.float64)
    return np.where(s >= 0, 1.0 / (1.0 + np.exp(-np.abs(s))), np.exp(-np.abs(s)) / (1.0 + np.exp(-np.abs(s))))


def _gate_inputs(seed: int, shape=(2, 301, 3, 4)):
    """Gate pre-activations covering [-30, 30] densely (plus 0 and the ends), and a random feature map."""
    rng = np.random.default_rng(seed)
    n, c = shape[:2]
    s = np.linspace(-30.0, 30.0, n * c, dtype=np.float32).reshape(n, c, 1, 1)
    x = rng.standard_normal(shape).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    return x, s, gy


def test_sigmoid_value_is_accurate_to_float32_rounding():
    _, s, _ = _gate_inputs(0)
    ones = np.ones(s.shape[:2] + (2, 3), np.float32)  # 1 * sigmoid(s) is exact: the output is the sigmoid itself
    got = SigmoidGate()(ms.Tensor(ones), ms.Tensor(s)).asnumpy().astype(np.float64)
    want = np.broadcast_to(_sigmoid64(s), got.shape)
    assert float(np.abs(got - want).max()) <= SIGMOID_ATOL
    # Relative accuracy in the tails too (sigmoid(-30) ~ 9e-14): a few ulp of the float32 result.
    ulp = np.spacing(want.astype(np.float32)).astype(np.float64)
    assert float((np.abs(got - want) / ulp).max()) <= 3.0
    # Dense sweep of every float32 in a few ranges: still within the bound.
    dense = np.concatenate([np.linspace(-30, 30, 200001, dtype=np.float32), np.float32([-100, -88, 88, 100])])
    dense = dense.reshape(1, -1, 1, 1)
    got = SigmoidGate()(ms.Tensor(np.ones_like(dense)), ms.Tensor(dense)).asnumpy().astype(np.float64)
    assert float(np.abs(got - _sigmoid64(dense)).max()) <= SIGMOID_ATOL


def test_sigmoid_gate_product_matches_float64():
    x, s, _ = _gate_inputs(1)
    got = SigmoidGate()(ms.Tensor(x), ms.Tensor(s)).asnumpy().astype(np.float64)
    want = x.astype(np.float64) * _sigmoid64(s)
    # One more float32 rounding (the product) on top of the sigmoid's.
    assert float(np.abs(got - want).max()) <= SIGMOID_ATOL * float(np.abs(x).max()) + 1e-12


def _sigmoid_derivative64(s: np.ndarray) -> np.ndarray:
    # e / (1 + e)^2, e = exp(-|s|): sig * (1 - sig) cancels catastrophically for large s even in float64.
    e = np.exp(-np.abs(s.astype(np.float64)))
    return e / (1.0 + e)**2


def _analytic_grads(x, s, gy):
    dx = gy.astype(np.float64) * _sigmoid64(s)
    ds = (gy.astype(np.float64) * x).sum(axis=(2, 3), keepdims=True) * _sigmoid_derivative64(s)
    return dx, ds


def test_gradients_match_float64_eagerly_and_under_jit():
    x, s, gy = _gate_inputs(2)
    gate = SigmoidGate()
    assert gate.use_kernel
    weights = ms.Tensor(gy)

    def loss(a, b):
        return (gate(a, b) * weights).sum()

    want_dx, want_ds = _analytic_grads(x, s, gy)
    # Scale of the ds sum's float32 rounding: the summands' magnitudes times the gate derivative.
    ds_scale = np.abs(gy.astype(np.float64) * x).sum(axis=(2, 3), keepdims=True) * _sigmoid_derivative64(s)
    fn = ms.value_and_grad(loss, (0, 1))
    results = []
    for f in (fn, ms.jit(fn)):
        for _ in range(CALLS):
            _, (dx, ds) = f(ms.Tensor(x), ms.Tensor(s))
            dx, ds = dx.asnumpy(), ds.asnumpy()
            assert float(np.abs(dx - want_dx).max()) <= SIGMOID_ATOL * float(np.abs(gy).max())
            assert np.all(np.abs(ds - want_ds) <= 1e-6 * ds_scale + 1e-30)
            results.append((dx, ds))
    # Deterministic: every call, eager or compiled, gives bit-identical gradients.
    for dx, ds in results[1:]:
        np.testing.assert_array_equal(dx, results[0][0])
        np.testing.assert_array_equal(ds, results[0][1])


def test_gradients_match_mindspore_sigmoid_grad():
    """Against the fallback (MindSpore ``Sigmoid`` + ``Mul`` and their autodiff) within its own error."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 9, 7)).astype(np.float32)
    s = (rng.standard_normal((2, 6, 1, 1)) * 4).astype(np.float32)
    gy = ms.Tensor(rng.standard_normal(x.shape).astype(np.float32))
    fast, ref = SigmoidGate(), SigmoidGate()
    assert fast.use_kernel and not ref.enable_kernel(False)

    def loss(a, b):
        return (fast(a, b) * gy).sum()

    def ref_loss(a, b):
        return (ref(a, b) * gy).sum()

    inputs = (ms.Tensor(x), ms.Tensor(s))
    np.testing.assert_allclose(fast(*inputs).asnumpy(), ref(*inputs).asnumpy(), rtol=1e-5, atol=1e-6)
    expected = [g.asnumpy() for g in ms.grad(ref_loss, (0, 1))(*inputs)]
    for fn in (ms.value_and_grad(loss, (0, 1)), ms.jit(ms.value_and_grad(loss, (0, 1)))):
        for _ in range(CALLS):
            for got, want in zip(fn(*inputs)[1], expected):
                np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=1e-5)


def test_env_var_falls_back_to_mindspore_sigmoid(monkeypatch):
    monkeypatch.setenv('EFFNET_MM_KERNELS', '0')
    x, s, gy = _gate_inputs(4, shape=(2, 5, 4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # an explicit opt-out is silent
        gate = SigmoidGate()
    assert not gate.use_kernel and not gate.enable_kernel(True)
    weights = ms.Tensor(gy)

    def loss(a, b):
        return (gate(a, b) * weights).sum()

    want = (ms.Tensor(x) * ops.sigmoid(ms.Tensor(s))).asnumpy()
    np.testing.assert_array_equal(gate(ms.Tensor(x), ms.Tensor(s)).asnumpy(), want)
    want_dx, want_ds = _analytic_grads(x, s, gy)
    for fn in (ms.value_and_grad(loss, (0, 1)), ms.jit(ms.value_and_grad(loss, (0, 1)))):
        for _ in range(2):
            _, (dx, ds) = fn(ms.Tensor(x), ms.Tensor(s))
            np.testing.assert_allclose(dx.asnumpy(), want_dx, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(ds.asnumpy(), want_ds, rtol=1e-4, atol=1e-5)


def test_squeeze_excitation_uses_the_gate_kernel_with_unchanged_parameters():
    fast, ref = SqueezeExcitation(16, 4), SqueezeExcitation(16, 4)
    names = [p.name for p in fast.get_parameters()]
    assert names == ['conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias']
    assert isinstance(fast.gate, SigmoidGate) and fast.gate.use_kernel
    ms.load_param_into_net(ref, {p.name: ms.Parameter(p.data.copy(), name=p.name) for p in fast.get_parameters()})
    assert not ref.gate.enable_kernel(False)
    x = ms.Tensor(np.random.default_rng(5).standard_normal((2, 16, 6, 5)).astype(np.float32))
    np.testing.assert_allclose(fast(x).asnumpy(), ref(x).asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ms.jit(fast)(x).asnumpy(), ref(x).asnumpy(), rtol=1e-5, atol=1e-6)
